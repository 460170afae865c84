"""The Gaussian MLP policy of the MAML paper's RL experiments, as a plain ``nn.Module``.

``forward(observations (..., O)) -> (..., 2A)``: the action means and the log standard deviations
side by side, so one functional call (``torch.func.functional_call`` with an adapted ``Params`` dict)
gives everything the log-likelihood needs, and the inner loop adapts the standard deviation too (as
the authors' ``MAMLGaussianMLPPolicy`` does). Means: ``O -> 100 -> 100 -> A`` with ReLU; the log
standard deviation is one state-independent parameter per action dimension, starting at 0 (std 1).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..models.mlp import MLP

HIDDEN = 100
LOG_2PI = math.log(2 * math.pi)


class GaussianMLP(nn.Module):
    """A diagonal Gaussian policy: ``observations (..., O) -> [mean (..., A), log_std (..., A)]``."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: tuple[int, ...] = (HIDDEN, HIDDEN), init_std: float = 1.0) -> None:
        super().__init__()
        self.mean = MLP(obs_dim, hidden, action_dim)
        self.log_std = nn.Parameter(torch.full((action_dim,), math.log(init_std)))

    def forward(self, observations: Tensor) -> Tensor:
        mean = self.mean(observations)
        return torch.cat([mean, self.log_std.expand_as(mean)], dim=-1)


def split(output: Tensor) -> tuple[Tensor, Tensor]:
    """The policy's output ``(..., 2A)`` as ``mean (..., A)`` and ``log_std (..., A)``."""
    return output.chunk(2, dim=-1)


def log_prob(output: Tensor, actions: Tensor) -> Tensor:
    """Log-density of ``actions (..., A)`` under the policy's output ``(..., 2A)``: ``(...)``."""
    mean, log_std = split(output)
    z = (actions - mean) * torch.exp(-log_std)
    return -(0.5 * z.pow(2) + log_std + 0.5 * LOG_2PI).sum(-1)


def sample_actions(output: Tensor, noise: Tensor) -> Tensor:
    """``mean + std * noise``: actions ``(..., A)`` from the policy's output ``(..., 2A)`` and standard normal ``noise``."""
    mean, log_std = split(output)
    return mean + torch.exp(log_std) * noise
