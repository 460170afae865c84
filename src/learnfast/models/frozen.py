"""A backbone held fixed: pretrained features that meta-training does not change."""
from __future__ import annotations

import torch
from torch import Tensor, nn


class Frozen(nn.Module):
    """Wraps ``module`` so that no gradient reaches it and it never enters training mode.

    Its parameters have ``requires_grad = False`` (so they are not meta-parameters and no optimizer
    moves them), its forward runs without building a graph, and ``train()`` leaves it in eval mode
    (dropout off; BatchNorm with running statistics uses them, one with ``track_running_stats=False``,
    like :class:`~learnfast.models.Conv4`'s, still normalises each call by its own batch, so the
    per-task statistics the backbone was trained with are kept). The wrapped module is ``.module``.

    Example:
        >>> encoder = Frozen(Conv4())        # then load pretrained weights into encoder.module
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> "Frozen":
        self.training = mode  # reported as asked; the wrapped module stays in eval mode
        return self

    def forward(self, x: Tensor) -> Tensor:
        with torch.no_grad():
            return self.module(x)


def unwrap(module: nn.Module) -> nn.Module:
    """The module inside a :class:`Frozen`, or ``module`` itself."""
    return module.module if isinstance(module, Frozen) else module
