"""The task contract: four tensors, support and query, with an optional leading task dimension.

A single task holds ``support_x (S, ...)``, ``support_y (S, ...)``, ``query_x (Q, ...)`` and
``query_y (Q, ...)``. A batch of tasks is the same type with a leading ``B`` on every field.
Algorithms take batches; :meth:`Task.unsqueeze` turns one task into a batch of one.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
from torch import Tensor


class Task(NamedTuple):
    """One few-shot task (or a batch of them, with a leading task dimension on every field)."""

    support_x: Tensor
    support_y: Tensor
    query_x: Tensor
    query_y: Tensor

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "Task":
        """Moves every field to ``device``; casts the floating inputs ``*_x`` (and float labels) to ``dtype``."""

        def move(t: Tensor) -> Tensor:
            if dtype is not None and t.is_floating_point():
                return t.to(device=device, dtype=dtype)
            return t.to(device=device)

        return Task(*(move(t) for t in self))

    def unsqueeze(self) -> "Task":
        """A single task as a batch of one: ``(S, ...) -> (1, S, ...)``."""
        return Task(*(t.unsqueeze(0) for t in self))

    @property
    def batch_size(self) -> int:
        """Number of tasks in a batch (the leading dimension)."""
        return self.support_x.shape[0]


def task_at(batch: Task, index: int | slice) -> Task:
    """The ``index``-th task of a batch (or a slice of the batch, still batched)."""
    return Task(*(t[index] for t in batch))


def stack_tasks(tasks: Sequence[Task]) -> Task:
    """Stacks single tasks of equal shapes into a batch ``(B, ...)``."""
    if not tasks:
        raise ValueError("stack_tasks needs at least one task")
    try:
        return Task(*(torch.stack(fields) for fields in zip(*tasks)))
    except RuntimeError as err:
        raise ValueError(f"cannot stack tasks of different shapes ({err}); sample them with the same ways/shots/queries") from err


def unstack_tasks(batch: Task) -> list[Task]:
    """Splits a batch into single tasks."""
    return [task_at(batch, i) for i in range(batch.batch_size)]


def cat_tasks(batches: Sequence[Task]) -> Task:
    """Concatenates batches along the task dimension."""
    return Task(*(torch.cat(fields) for fields in zip(*batches)))


def check_batch(batch: Task) -> None:
    """Raises ``ValueError`` naming the field when a batch is not shaped like ``(B, S, ...)``."""
    if not isinstance(batch, Task):
        raise TypeError(f"expected a learnfast.Task, got {type(batch).__name__}; build one with Task(support_x, support_y, query_x, query_y)")
    b = batch.support_x.shape[0] if batch.support_x.dim() else None
    for name, t in zip(Task._fields, batch):
        if t.dim() < 2 or t.shape[0] != b:
            raise ValueError(
                f"Task.{name} has shape {tuple(t.shape)}; a batch of tasks needs a leading task dimension "
                f"of size {b} on every field (use task.unsqueeze() for a single task)"
            )
    if batch.support_x.shape[1] != batch.support_y.shape[1] or batch.query_x.shape[1] != batch.query_y.shape[1]:
        raise ValueError(
            f"inputs and labels disagree in length: support {tuple(batch.support_x.shape[:2])} vs {tuple(batch.support_y.shape[:2])}, "
            f"query {tuple(batch.query_x.shape[:2])} vs {tuple(batch.query_y.shape[:2])}"
        )
