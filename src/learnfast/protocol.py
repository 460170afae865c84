"""The evaluation protocol's core: a fixed, seeded set of test episodes; per-episode scores; mean and 95% CI.

A lower layer (torch and ``tasks`` only), so data readers and algorithms can score episodes the
way ``learnfast.train.evaluate`` does without importing the training harness.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
from torch import Tensor

from .tasks import Task, cat_tasks


@dataclass(frozen=True)
class EvalResult:
    """``metric`` ("accuracy" or "mse") per episode in ``values (episodes,)``; ``mean`` and ``ci95 = 1.96 std / sqrt(n)``."""

    metric: str
    values: Tensor

    @property
    def episodes(self) -> int:
        return self.values.numel()

    @property
    def mean(self) -> float:
        return self.values.mean().item()

    @property
    def ci95(self) -> float:
        n = self.values.numel()
        return 1.96 * self.values.std(unbiased=True).item() / math.sqrt(n) if n > 1 else float("nan")

    def __str__(self) -> str:
        scale = 100.0 if self.metric == "accuracy" else 1.0
        unit = "%" if self.metric == "accuracy" else ""
        return f"{self.metric} {scale * self.mean:.2f}{unit} ± {scale * self.ci95:.2f}{unit} (95% CI, {self.episodes} episodes)"


def episode_generator(seed: int, index: int) -> torch.Generator:
    """Episode ``index`` of the fixed set ``seed`` is drawn from its own generator, so the set does not depend on batching."""
    return torch.Generator().manual_seed(seed * 1_000_003 + index)


def fixed_episodes(source, episodes: int, seed: int, batch_size: int, indices: Sequence[int] | None = None) -> Iterator[Task]:
    """Yields the fixed episode set of ``source`` (``.sample(1, generator) -> Task``) as batched Tasks of at most
    ``batch_size`` episodes; ``indices``: only those episodes of the set (one process's share), in that order."""
    order = range(episodes) if indices is None else indices
    for start in range(0, len(order), batch_size):
        yield cat_tasks([source.sample(1, episode_generator(seed, i)) for i in order[start:start + batch_size]])


HIGHER_IS_BETTER = ("accuracy", "return")  # the other metrics (mse, final_loss) are losses


def episode_scores(predictions: Tensor, batch: Task, metric: str) -> Tensor:
    """Per-episode accuracy ``(B,)`` from logits ``(B, Q, N)``, per-episode MSE from ``(B, Q, d)``, or
    ``"final_loss"``: the loss a learned optimizer leaves on each problem, its predictions ``(B, 1)``."""
    if metric == "accuracy":
        return (predictions.argmax(-1) == batch.query_y).float().mean(-1)
    if metric in ("final_loss", "return"):  # a meta-RL task's average return after adaptation, (B, 1)
        return predictions.flatten(1).mean(-1)
    return (predictions - batch.query_y).pow(2).flatten(1).mean(-1)
