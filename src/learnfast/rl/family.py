"""A meta-RL task family: a distribution over task parameters (a goal, a velocity, a direction) and the
vectorised environments that run a meta-batch of tasks, several trajectories each.

Shapes: ``B`` tasks, ``N`` trajectories per task, observations ``O``, actions ``A``, task parameters ``P``.
A batch of environments steps all ``B * N`` of them at once: ``reset(seeds) -> (B, N, O)`` and
``step(actions (B, N, A)) -> (observations (B, N, O), rewards (B, N))``; rewards are the task's own,
rewritten from the simulator's as each family's docstring defines. Families are final; the base
declares the contract.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Protocol

import torch
from torch import Tensor


class VecEnvs(Protocol):
    """``B`` tasks x ``N`` trajectories of one family, stepped together."""

    def reset(self, seeds: Tensor) -> Tensor:
        """Starts every trajectory; ``seeds (B,)`` int64 fix each task's start states. Returns ``(B, N, O)``."""

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor]:
        """``actions (B, N, A)`` (the policy's raw samples; each family clips them) -> ``(B, N, O)``, rewards ``(B, N)``."""

    def close(self) -> None:
        """Frees the simulators."""


class TaskFamily(ABC):
    """The contract of a task family; ``name`` is its data-set name in configs (``[data] dataset``)."""

    name: str
    obs_dim: int
    action_dim: int
    param_dim: int
    horizon: int  # steps per trajectory (fixed; no early termination)
    trajectories: int  # trajectories per task and inner step in the MAML paper
    requires: tuple[str, ...] = ()  # simulator packages (the learnfast[rl] extra) its environments import

    @abstractmethod
    def sample_params(self, count: int, generator: torch.Generator) -> Tensor:
        """``(count, P)`` task parameters drawn from the family's task distribution."""

    @abstractmethod
    def make_envs(self, params: Tensor, trajectories: int) -> VecEnvs:
        """Environments for the tasks ``params (B, P)``, ``trajectories`` of each."""
