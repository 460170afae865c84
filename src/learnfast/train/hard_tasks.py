"""Hard-task meta-batches (Sun et al. 2019): re-sample the classes the model failed on most.

After every meta-batch, each task's *failure class* (the class of its lowest query accuracy) is
remembered. One meta-batch in ``every`` is a hard one (numbers ``every + 1``, ``2 every + 1``, ...,
so that with ``every`` = 2, 5 or 10 the records logged every 10 iterations are ordinary ones):
each of its tasks takes ``ways`` of the failure classes remembered since the previous hard
meta-batch, at random, topped up with random other classes when fewer were remembered; its items
are drawn afresh. The others are ordinary random meta-batches. Works with any algorithm and any
classification ``EpisodeSampler``.

References:
    Sun, Liu, Chua & Schiele (2019). Meta-Transfer Learning for Few-Shot Learning. CVPR, section 4.3.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..episodes import EpisodeSampler
from ..tasks import Task


def failure_classes(classes: Tensor, predictions: Tensor, query_y: Tensor) -> Tensor:
    """Per task, the class with the lowest query accuracy (the first one on ties).

    Args:
        classes: ``(B, ways)`` dataset class id of each episode label.
        predictions: ``(B, Q, ways)`` query logits.
        query_y: ``(B, Q)`` episode labels.

    Returns: ``(B,)`` dataset class ids.
    """
    ways = classes.shape[1]
    correct = (predictions.argmax(-1) == query_y).to(predictions.dtype)  # (B, Q)
    onehot = F.one_hot(query_y, ways).to(predictions.dtype)  # (B, Q, ways)
    accuracy = (correct.unsqueeze(-1) * onehot).sum(1) / onehot.sum(1).clamp(min=1)  # (B, ways)
    return classes.gather(1, accuracy.argmin(1, keepdim=True)).squeeze(1)


class HardTasks:
    """Meta-batches of an ``EpisodeSampler``, one in ``every`` of them hard.

    Use: ``batch, classes = hard.sample(B, generator, iteration)``, train on it, then
    ``hard.record(classes, predictions, batch.query_y)``. ``failed`` (a list of class ids) is all the
    state there is; a checkpoint stores it.
    """

    def __init__(self, sampler: EpisodeSampler, every: int) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1 (a hard meta-batch every that many), got {every}")
        self.sampler, self.every = sampler, every
        self.failed: list[int] = []

    def is_hard(self, iteration: int) -> bool:
        """Whether meta-batch ``iteration + 1`` (``iteration`` done) is a hard one."""
        return iteration > 0 and iteration % self.every == 0 and bool(self.failed)

    def sample(self, batch_size: int, generator: torch.Generator, iteration: int) -> tuple[Task, Tensor]:
        """Meta-batch ``iteration + 1`` and its classes ``(B, ways)`` (dataset class ids)."""
        if self.is_hard(iteration):
            classes = self.hard_classes(batch_size, generator)
            self.failed = []
        else:
            classes = self.sampler.draw_classes(batch_size, generator)
        return self.sampler.sample_from(classes, generator), classes

    def hard_classes(self, batch_size: int, generator: torch.Generator) -> Tensor:
        """``(B, ways)`` classes, failure classes first: each row is a random order of all classes in
        which the remembered failures come before the rest, cut to ``ways``."""
        ids = self.sampler.class_ids
        keys = torch.rand(batch_size, ids.numel(), generator=generator)
        keys = keys - torch.isin(ids, torch.tensor(self.failed, dtype=ids.dtype)).to(keys.dtype)  # failures sort first
        return ids[keys.argsort(dim=1)[:, : self.sampler.spec.ways]]

    def record(self, classes: Tensor, predictions: Tensor, query_y: Tensor) -> None:
        """Remembers each task's failure class (see :func:`failure_classes`)."""
        self.failed += failure_classes(classes, predictions, query_y).tolist()
