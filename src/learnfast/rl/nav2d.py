"""2D point navigation, the MAML paper's first meta-RL task family (Finn et al. 2017, section 5.3).

A point starts at the origin and moves by its action, clipped to ``[-0.1, 0.1]`` per coordinate (the
paper's rllab ``normalize`` maps the policy's ``[-1, 1]`` onto the action box; here ``0.1 * clip(a, -1,
1)``). The task is a goal drawn uniformly from ``[-0.5, 0.5]^2``; the observation is the position, the
reward after each step minus the distance to the goal, and a trajectory lasts 100 steps.

Departure: the paper's environment ends a trajectory once the point is within 0.01 of the goal (on
both axes); here every trajectory runs the full 100 steps (a point at the goal earns about 0 per step,
so returns differ only by what the last steps near the goal add). Plain tensors, no simulator package.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .family import TaskFamily

GOAL_RANGE = 0.5
MAX_STEP = 0.1


def nav2d_reward(position: Tensor, goal: Tensor) -> Tensor:
    """Minus the Euclidean distance: ``position (..., 2)``, ``goal (..., 2)`` -> ``(...)``."""
    return -(position - goal).norm(dim=-1)


class Nav2DEnvs:
    """``B`` goals ``(B, 2)`` x ``N`` points, stepped as one tensor ``(B, N, 2)``."""

    def __init__(self, goals: Tensor, trajectories: int) -> None:
        self.goals, self.trajectories = goals, trajectories
        self.position = torch.zeros(goals.shape[0], trajectories, 2, dtype=goals.dtype)

    def reset(self, seeds: Tensor) -> Tensor:
        self.position = torch.zeros_like(self.position)  # the start is fixed: seeds have nothing to draw
        return self.position.clone()

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor]:
        self.position = self.position + MAX_STEP * actions.clamp(-1.0, 1.0)
        return self.position.clone(), nav2d_reward(self.position, self.goals.unsqueeze(1))

    def close(self) -> None:
        pass


class Nav2D(TaskFamily):
    """Goals uniform in ``[-0.5, 0.5]^2``; 2-d observations and actions, 100-step trajectories, 20 per task."""

    name, obs_dim, action_dim, param_dim, horizon, trajectories = "nav2d", 2, 2, 2, 100, 20

    def sample_params(self, count: int, generator: torch.Generator) -> Tensor:
        return (torch.rand(count, 2, generator=generator) * 2 - 1) * GOAL_RANGE

    def make_envs(self, params: Tensor, trajectories: int) -> Nav2DEnvs:
        return Nav2DEnvs(params, trajectories)
