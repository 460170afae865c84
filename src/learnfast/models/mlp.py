"""A plain ReLU multi-layer perceptron (MAML's 1-40-40-1 sinusoid network by default)."""
from __future__ import annotations

from torch import Tensor, nn


class MLP(nn.Module):
    """``in_features -> hidden[0] -> ... -> out_features`` with ReLU between layers.

    Shapes: ``(n, in_features) -> (n, out_features)``.
    """

    def __init__(self, in_features: int = 1, hidden: tuple[int, ...] = (40, 40), out_features: int = 1) -> None:
        super().__init__()
        sizes = (in_features, *hidden)
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(sizes[-1], out_features))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)
