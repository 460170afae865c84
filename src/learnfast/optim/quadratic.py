"""Random 10-d quadratics ``f(theta) = ||W theta - y||^2``, the first problem family of Andrychowicz et al. (2016).

W ``(10, 10)`` and y ``(10,)`` have i.i.d. standard normal entries (the paper's text; its code draws
U[0, 1]); theta starts at N(0, 0.01^2) per coordinate, as in the paper's code. Every step sees the
whole objective (no mini-batches). Held-out problems are fresh draws from their own fixed seeds.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..tasks import Task
from .problems import Optimizee, problem_seeds, problem_task

DIM = 10
INIT_STD = 0.01


class Quadratic(nn.Module):
    """The optimizee of the quadratic family: ``theta (dim,)``; ``forward(W (n, dim)) -> W theta (n,)``."""

    def __init__(self, dim: int = DIM) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.empty(dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.theta, std=INIT_STD)

    def forward(self, w: Tensor) -> Tensor:
        return w @ self.theta


def squared_error(predictions: Tensor, targets: Tensor) -> Tensor:
    """``||predictions - targets||^2``: the sum, not the mean, as the paper writes the objective."""
    return F.mse_loss(predictions, targets, reduction="sum")


def quadratic_optimizee(dim: int = DIM) -> Optimizee:
    """``||W theta - y||^2`` over ``theta (dim,)``, full batch."""
    return Optimizee(Quadratic(dim), squared_error, batch_size=None, expects=(dim,), name="quadratic")


class QuadraticProblems:
    """Samples quadratics as problem Tasks: ``support_x`` = W ``(B, dim, dim)``, ``support_y`` = y ``(B, dim)``.

    ``part`` is kept for the protocol (:mod:`learnfast.optim.problems`); every part draws from the
    same distribution, and held-out sets differ by their seeds.
    """

    def __init__(self, part: str = "train", dim: int = DIM) -> None:
        self.part, self.dim = part, dim

    def for_part(self, part: str) -> "QuadraticProblems":
        return QuadraticProblems(part, self.dim)

    def sample(self, count: int, generator: torch.Generator) -> Task:
        w = torch.randn(count, self.dim, self.dim, generator=generator)
        y = torch.randn(count, self.dim, generator=generator)
        return problem_task(w, y, problem_seeds(count, generator))
