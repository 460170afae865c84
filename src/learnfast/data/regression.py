"""Sinusoid regression tasks, as in the MAML paper's appendix (Finn et al. 2017, §5.1).

``y = A sin(x - phi)``, ``A ~ U[0.1, 5]``, ``phi ~ U[0, pi]``, ``x ~ U[-5, 5]``.
"""
from __future__ import annotations

import math

import torch

from ..tasks import Task


class SinusoidTasks:
    """A task family of sinusoids; each task draws its own amplitude and phase.

    Args:
        shots: support points per task (K).
        queries: query points per task.
        amplitude, phase, x_range: the uniform ranges of the MAML protocol.

    ``sample(B, generator)`` returns a Task with ``*_x, *_y`` of shape ``(B, K, 1)``.
    """

    def __init__(
        self,
        shots: int = 10,
        queries: int = 10,
        amplitude: tuple[float, float] = (0.1, 5.0),
        phase: tuple[float, float] = (0.0, math.pi),
        x_range: tuple[float, float] = (-5.0, 5.0),
    ) -> None:
        if shots < 1 or queries < 1:
            raise ValueError(f"shots and queries must be >= 1, got shots={shots}, queries={queries}")
        self.shots, self.queries = shots, queries
        self.amplitude, self.phase, self.x_range = amplitude, phase, x_range

    @staticmethod
    def _uniform(shape: tuple[int, ...], bounds: tuple[float, float], generator: torch.Generator) -> torch.Tensor:
        low, high = bounds
        return low + (high - low) * torch.rand(shape, generator=generator)

    def sample(self, batch_size: int, generator: torch.Generator) -> Task:
        amp = self._uniform((batch_size, 1, 1), self.amplitude, generator)
        phase = self._uniform((batch_size, 1, 1), self.phase, generator)
        x = self._uniform((batch_size, self.shots + self.queries, 1), self.x_range, generator)
        y = amp * torch.sin(x - phase)
        k = self.shots
        return Task(x[:, :k], y[:, :k], x[:, k:], y[:, k:])
