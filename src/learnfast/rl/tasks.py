"""Meta-RL tasks as :class:`~learnfast.tasks.Task` batches, so they go through the trainer and the
evaluation protocol (fixed seeded task sets, mean and 95% CI) unchanged, as optimization problems do
(``learnfast.optim.problems``):

==========  =====================  ================================================================
field       shape                  meaning
==========  =====================  ================================================================
support_x   ``(B, 1, P)``          the task parameters (goal, velocity, direction)
support_y   ``(B, 1, 1)``          0 (no targets: the task's data are the trajectories it samples)
query_x     ``(B, 1)`` int64       the task's seed: its start states and action noise
query_y     ``(B, 1)``             0
==========  =====================  ================================================================

The algorithm samples the trajectories inside ``meta_loss`` / ``forward``. Held-out tasks are fresh
draws from the task distribution under their own fixed seeds (every part draws from the same
distribution, as in the MAML paper).
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..tasks import Task
from .family import TaskFamily


class RLTasks:
    """Samples tasks of ``family`` in the Task layout above; ``part`` is kept for the protocol."""

    def __init__(self, family: TaskFamily, part: str = "train") -> None:
        self.family, self.part = family, part

    def sample(self, count: int, generator: torch.Generator) -> Task:
        params = self.family.sample_params(count, generator)
        seeds = torch.randint(0, 2**31, (count, 1), generator=generator)
        return Task(params.unsqueeze(1), torch.zeros(count, 1, 1), seeds, torch.zeros(count, 1))


def task_params(batch: Task) -> Tensor:
    """``(B, P)`` task parameters of a batch in the layout above."""
    return batch.support_x[:, 0]


def task_seeds(batch: Task) -> Tensor:
    """``(B,)`` int64 task seeds."""
    return batch.query_x[:, 0].long()
