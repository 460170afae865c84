"""A 4-block convolutional backbone that keeps feature maps (the Relation Network's embedding module).

Sung et al. (2018), Omniglot and miniImageNet: four blocks of conv3x3-64, BatchNorm, ReLU; only the
first two blocks max-pool, so a 28x28 image becomes a 64x7x7 feature map rather than a vector.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .conv4 import channels_last, conv_block


class Conv4Maps(nn.Module):
    """Four conv blocks of ``hidden`` channels, max-pool in the first two only; returns feature maps.

    The authors' Omniglot code leaves the first two convolutions unpadded (28x28 -> 64x5x5); here
    every convolution is padded, so 28x28 -> 64x7x7, as the paper's figure reads.

    Args:
        in_channels: image channels (1 for Omniglot).
        hidden: channels of every block.

    Shapes: ``(n, C, H, W) -> (n, hidden, H // 4, W // 4)``, e.g. ``(n, 1, 28, 28) -> (n, 64, 7, 7)``.
    """

    def __init__(self, in_channels: int = 1, hidden: int = 64) -> None:
        super().__init__()
        self.features = nn.Sequential(
            conv_block(in_channels, hidden, pool=True), conv_block(hidden, hidden, pool=True),
            conv_block(hidden, hidden, pool=False), conv_block(hidden, hidden, pool=False),
        )
        self.to(memory_format=torch.channels_last)  # weights channels-last as in Conv4 (no reorders)

    def forward(self, x: Tensor) -> Tensor:
        # channels-last for fast BN/ReLU/max-pool on CPU, kept for default-layout weights as in Conv4
        x = channels_last(self.features[0](channels_last(x)))
        return self.features[1:](x)
