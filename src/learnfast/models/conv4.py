"""The 4-block convolutional backbone of the few-shot literature (Vinyals et al. 2016; Finn et al. 2017)."""
from __future__ import annotations

import torch
from torch import Tensor, nn


def channels_last(x: Tensor) -> Tensor:
    """``x`` in channels-last layout; unchanged inside ``vmap``, which does not support layout changes."""
    try:
        return x.contiguous(memory_format=torch.channels_last)
    except RuntimeError:  # "NYI: clone(memory_format) inside vmap"
        return x


def conv_block(in_channels: int, out_channels: int, stride: int = 1, pool: bool = False) -> nn.Sequential:
    """conv3x3 (padding 1), BatchNorm with per-call batch statistics, ReLU, and a 2x2 max-pool if ``pool``.

    Shapes: ``(n, in_channels, H, W) -> (n, out_channels, H // s, W // s)``, ``s = stride * (2 if pool else 1)``.
    """
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1),
        # Per-batch statistics only: each forward call (one task) normalises with its own batch,
        # and nothing is carried between tasks.
        nn.BatchNorm2d(out_channels, track_running_stats=False),
    ]
    # Max-pool before ReLU: the two commute exactly (ReLU is monotone, so max(relu(x)) = relu(max(x)),
    # and the gradient reaches the same element), but ReLU then touches a quarter of the values. In
    # place, as nothing upstream keeps its output (BN and max-pool save their inputs).
    if pool:
        layers.append(nn.MaxPool2d(2))
    layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class Conv4(nn.Module):
    """Four conv blocks of ``hidden`` channels, then an optional linear head.

    Max-pool variant (``strided=False``): conv3x3, BN, ReLU, 2x2 max-pool (run as max-pool then
    ReLU, which is the same function); 28x28 -> 64-d features.
    Strided variant (MAML's Omniglot net): conv3x3 stride 2, BN, ReLU; features are the spatial mean.

    Args:
        in_channels: image channels (1 for Omniglot).
        hidden: channels of every block.
        out_features: size of the linear head (e.g. ``ways``); ``None`` returns the features.
        strided: which variant.

    Shapes: ``(n, C, H, W) -> (n, out_features)`` or ``(n, feature_dim)``.
    """

    def __init__(self, in_channels: int = 1, hidden: int = 64, out_features: int | None = None, strided: bool = False) -> None:
        super().__init__()
        self.strided = strided
        self.features = nn.Sequential(
            *(conv_block(c, hidden, stride=2 if strided else 1, pool=not strided) for c in (in_channels, hidden, hidden, hidden))
        )
        self.head = nn.Linear(hidden, out_features) if out_features is not None else None
        # Convolution weights in channels-last too: with both operands channels-last, oneDNN runs
        # the whole forward and backward without layout reorders (Conv4 forward+backward on a
        # 120-image episode, one CPU thread: ~1.4x faster). Same arithmetic, only the layout changes.
        self.to(memory_format=torch.channels_last)

    def forward(self, x: Tensor) -> Tensor:
        # Channels-last makes BN/ReLU/max-pool several times faster on CPU. The module's own weights
        # already give channels-last outputs; these relabels (no-ops then) keep it so when the
        # weights come in the default layout, e.g. adapted parameters through functional_call.
        x = channels_last(self.features[0](channels_last(x)))
        for block in list(self.features)[1:]:  # not features[1:]: higher's patched Sequential cannot be sliced
            x = block(x)
        x = x.mean(dim=(2, 3)) if self.strided else x.flatten(1)  # (n, hidden) at 28x28
        return self.head(x) if self.head is not None else x
