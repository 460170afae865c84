"""N-way K-shot Q-query episodes from any labelled dataset, seeded and vectorised.

The sampler holds the data once as ``images (n_items, ...)`` with integer ``labels (n_items,)``
and draws whole meta-batches with a handful of tensor ops (no Python loop over tasks or
samples), so sampling never dominates a training step.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .tasks import Task


@dataclass(frozen=True)
class EpisodeSpec:
    """Shape of an episode: ``ways`` classes, ``shots`` support and ``queries`` query items per class."""

    ways: int
    shots: int
    queries: int

    def __post_init__(self) -> None:
        for name in ("ways", "shots", "queries"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")


class EpisodeSampler:
    """Draws N-way K-shot Q-query classification episodes.

    Classes in an episode are distinct and relabelled ``0..ways-1`` in a random order; support and
    query items of a class never overlap. Support is ordered class-major: item ``i`` has label
    ``i // shots``; query likewise with ``queries``.

    Args:
        inputs: ``(n_items, ...)`` tensor of inputs (any dtype; converted by ``transform``).
        labels: ``(n_items,)`` integer class ids (any values; only equality matters).
        spec: episode shape.
        classes: optional subset of class ids to draw from (a class split).
        transform: applied to every sampled input batch ``(B, n, ...)``, e.g. uint8 -> float.

    Example:
        >>> images, labels = torch.rand(200, 1, 28, 28), torch.arange(10).repeat_interleave(20)  # 10 classes
        >>> sampler = EpisodeSampler(images, labels, EpisodeSpec(ways=5, shots=1, queries=15))
        >>> batch = sampler.sample(32, torch.Generator().manual_seed(0))   # Task of (32, ...) tensors
        >>> batch.support_x.shape, batch.query_y.shape
        (torch.Size([32, 5, 1, 28, 28]), torch.Size([32, 75]))
    """

    def __init__(self, inputs: Tensor, labels: Tensor, spec: EpisodeSpec, classes: Tensor | None = None, transform=None) -> None:
        if inputs.shape[0] == 0:
            raise ValueError("the dataset is empty: pass at least `ways` classes with `shots + queries` items each")
        if labels.dim() != 1 or labels.shape[0] != inputs.shape[0]:
            raise ValueError(
                f"labels must be a 1-d tensor with one label per input: got labels {tuple(labels.shape)} for inputs {tuple(inputs.shape)}"
            )
        if labels.is_floating_point() or labels.dtype == torch.bool:
            raise ValueError(f"labels must be integer class ids, got dtype {labels.dtype}; map class names to ints first")
        class_ids, counts = torch.unique(labels, return_counts=True)  # sorted ids
        offsets = torch.cumsum(counts, 0) - counts  # where each class starts in labels sorted by class
        if classes is not None:
            classes = torch.as_tensor(classes)
            missing = classes[~torch.isin(classes, class_ids)]
            if missing.numel():
                raise ValueError(f"class split names {missing.numel()} class ids absent from labels (e.g. {missing[:5].tolist()})")
            keep = torch.isin(class_ids, classes)
            class_ids, counts, offsets = class_ids[keep], counts[keep], offsets[keep]
        need = spec.shots + spec.queries
        if spec.ways > class_ids.numel():
            raise ValueError(
                f"ways={spec.ways} but only {class_ids.numel()} classes are available; lower ways to at most {class_ids.numel()} "
                f"or use a split with more classes"
            )
        enough = counts >= need
        if int(enough.sum()) < spec.ways:
            raise ValueError(
                f"shots + queries = {need} items per class, but only {int(enough.sum())} classes have that many "
                f"(smallest class has {int(counts.min())}); lower shots/queries to at most {int(counts.min())} in total "
                f"or ways to at most {int(enough.sum())}"
            )
        # Classes too small for this spec are left out rather than failing later mid-training.
        class_ids, counts, offsets = class_ids[enough], counts[enough], offsets[enough]
        self.inputs, self.spec, self.transform = inputs, spec, transform
        self.class_ids = class_ids
        # (C, max_count) table of item indices per class, padded with -1.
        order = torch.argsort(labels, stable=True)
        column = torch.arange(int(counts.max()))
        valid = column < counts[:, None]  # (C, max_count)
        table = order[(offsets[:, None] + column).clamp(max=labels.numel() - 1)]
        self.table, self.counts = table.masked_fill(~valid, -1), counts

    @property
    def num_classes(self) -> int:
        return self.class_ids.numel()

    def sample(self, batch_size: int, generator: torch.Generator) -> Task:
        """Draws ``batch_size`` episodes as one batched :class:`Task`.

        Returns:
            ``Task`` with ``support_x (B, ways*shots, ...)``, ``support_y (B, ways*shots)``,
            ``query_x (B, ways*queries, ...)``, ``query_y (B, ways*queries)``.
        """
        return self.sample_from(self.draw_classes(batch_size, generator), generator)

    def draw_classes(self, batch_size: int, generator: torch.Generator) -> Tensor:
        """The classes of ``batch_size`` random episodes: ``(B, ways)`` dataset class ids, distinct per row."""
        # the first `ways` of a random permutation of all classes
        rows = torch.rand(batch_size, self.num_classes, generator=generator).argsort(dim=1)[:, : self.spec.ways]
        return self.class_ids[rows]

    def sample_from(self, classes: Tensor, generator: torch.Generator) -> Task:
        """Episodes over given classes: row ``b`` of ``classes (B, ways)`` (dataset class ids) makes episode ``b``.

        Label ``j`` of episode ``b`` is class ``classes[b, j]``; items are drawn as in :meth:`sample`
        (which is ``sample_from(draw_classes(...))``). Hard-task mining re-samples failed classes this way.
        """
        w, k, q = self.spec.ways, self.spec.shots, self.spec.queries
        cls = self._rows(classes)  # (B, w) rows of the class table
        batch_size = cls.shape[0]
        # Distinct items per class: random keys, padding sorted last.
        counts = self.counts[cls]  # (B, w)
        keys = torch.rand(batch_size, w, self.table.shape[1], generator=generator)
        keys = keys.masked_fill(torch.arange(self.table.shape[1]) >= counts[..., None], 2.0)
        pick = keys.argsort(dim=2)[..., : k + q]  # (B, w, k+q)
        items = torch.gather(self.table[cls], 2, pick)  # (B, w, k+q) dataset indices
        x = self.inputs[items]  # (B, w, k+q, ...)
        if self.transform is not None:
            x = self.transform(x)
        y = torch.arange(w).view(1, w, 1).expand(batch_size, w, k + q)
        feat = x.shape[3:]
        return Task(
            x[:, :, :k].reshape(batch_size, w * k, *feat),
            y[:, :, :k].reshape(batch_size, w * k),
            x[:, :, k:].reshape(batch_size, w * q, *feat),
            y[:, :, k:].reshape(batch_size, w * q),
        )

    def _rows(self, classes: Tensor) -> Tensor:
        """Rows of the class table for dataset class ids ``(B, ways)``, validated."""
        classes = torch.as_tensor(classes)
        if classes.dim() != 2 or classes.shape[1] != self.spec.ways:
            raise ValueError(f"classes must be a (batch, ways={self.spec.ways}) tensor of class ids, got shape {tuple(classes.shape)}")
        rows = torch.searchsorted(self.class_ids, classes).clamp(max=self.num_classes - 1)
        unknown = classes[self.class_ids[rows] != classes]
        if unknown.numel():
            raise ValueError(
                f"classes {unknown.unique()[:5].tolist()} are not available to this sampler (not in its split, or with fewer "
                f"than shots + queries = {self.spec.shots + self.spec.queries} items); draw from sampler.class_ids"
            )
        if (rows.sort(dim=1).values.diff(dim=1) == 0).any():
            raise ValueError("the classes of an episode must be distinct; a row of `classes` repeats a class id")
        return rows
