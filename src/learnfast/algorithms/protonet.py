"""Prototypical Networks.

Snell, Swersky & Zemel (2017). Prototypical Networks for Few-shot Learning. NeurIPS.

Each class is represented by the mean embedding (prototype) of its support items; a query is
classified by a softmax over negative squared Euclidean distances to the prototypes.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..functional import prototypes, squared_distances
from ..tasks import Task, check_batch
from .base import Algorithm, MetaOutput, per_task, query_loss


class ProtoNet(Algorithm):
    """Prototypical Networks over any embedding network (no output head).

    Support and query items of a task go through the encoder together, one task per call, so
    BatchNorm statistics are per task (``per_task``: one encoder call per task).

    Args:
        model: the embedding network ``(n, ...) -> (n, D)``.

    Returns (forward): logits ``(B, Q, ways)``, the negative squared distances.
    """

    needs_head = False
    freezable = True

    def __init__(self, model: nn.Module) -> None:
        super().__init__(loss="cross_entropy")
        self.model = model

    def forward(self, batch: Task) -> Tensor:
        check_batch(batch)
        ways = int(batch.support_y.max()) + 1
        s = batch.support_x.shape[1]
        z = per_task(self.model, torch.cat([batch.support_x, batch.query_x], dim=1))  # (B, S+Q, D)
        return -squared_distances(z[:, s:], prototypes(z[:, :s], batch.support_y, ways))

    def meta_loss(self, batch: Task, generator: torch.Generator | None = None) -> MetaOutput:
        logits = self(batch)
        return MetaOutput(query_loss(self.loss_fn, logits, batch.query_y), logits.detach())
