"""Model averaging of few-shot learners: several adapted learners vote on the same episode.

``Ensemble(members)`` is an algorithm whose forward pass adapts every member to the episode's
support set and averages their class probabilities (softmax of each member's query logits), then
returns the log of the average as logits, so it goes through the evaluation protocol like any
algorithm. ``compare_ensemble`` scores the members and the ensemble on one fixed episode set and
gives the ensemble's paired difference from the best member with its 95% CI.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor, nn

from tqdm.auto import tqdm

from ..protocol import EvalResult, episode_scores, fixed_episodes
from ..tasks import Task


class Ensemble(nn.Module):
    """The mean of the members' query class probabilities ``(B, Q, ways)``, returned as log-probabilities.

    Args:
        members: algorithms that output classification logits ``(B, Q, ways)`` for a batch of tasks.
        weights: non-negative weights of the members (default: uniform); normalised to sum to 1.
    """

    def __init__(self, members: Sequence[nn.Module], weights: Sequence[float] | None = None) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        weights = [1.0] * len(members) if weights is None else list(weights)
        if len(weights) != len(members) or any(w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError(f"weights must be {len(members)} non-negative numbers with a positive sum, got {weights}")
        self.members = nn.ModuleList(members)
        self.register_buffer("weights", torch.tensor(weights, dtype=torch.float32) / sum(weights))

    def forward(self, batch: Task) -> Tensor:
        probabilities = sum(w * member(batch).float().softmax(-1) for w, member in zip(self.weights, self.members))
        return probabilities.clamp_min(1e-12).log()


@dataclass(frozen=True)
class EnsembleReport:
    """Each member's and the ensemble's scores on the same episodes, and the ensemble's gain over the best member."""

    members: dict[str, EvalResult]
    ensemble: EvalResult

    @property
    def best_member(self) -> str:
        return max(self.members, key=lambda name: self.members[name].mean)

    @property
    def gain(self) -> tuple[float, float]:
        """Mean paired difference (ensemble - best member) over the episodes, and its 95% CI half-width."""
        diff = self.ensemble.values - self.members[self.best_member].values
        return diff.mean().item(), 1.96 * diff.std(unbiased=True).item() / math.sqrt(diff.numel())


def compare_ensemble(members: dict[str, nn.Module], source, episodes: int, seed: int = 0, progress: bool = False) -> EnsembleReport:
    """Scores every member and their uniform ensemble on the same ``episodes`` fixed episodes of ``source``
    (each member adapts once per episode; the ensemble averages those same predictions)."""
    for member in members.values():
        member.eval()
    per_member: dict[str, list[Tensor]] = {name: [] for name in members}
    together: list[Tensor] = []
    with torch.no_grad():
        for batch in tqdm(fixed_episodes(source, episodes, seed, 1), total=episodes, desc="ensemble", disable=not progress, leave=False):
            probabilities = 0.0
            for name, member in members.items():
                logits = member(batch).float()
                per_member[name].append(episode_scores(logits, batch, "accuracy"))
                probabilities = probabilities + logits.softmax(-1) / len(members)
            together.append(episode_scores(probabilities, batch, "accuracy"))
    scores = {name: EvalResult("accuracy", torch.cat(values).double()) for name, values in per_member.items()}
    return EnsembleReport(scores, EvalResult("accuracy", torch.cat(together).double()))
