"""MLP classifiers on MNIST-1D: the learned optimizer's neural-network problem family.

As in Andrychowicz et al. (2016, MNIST): a one-hidden-layer MLP of 20 sigmoid units, cross-entropy,
mini-batches of 128, PyTorch's default initialisation from each problem's seed. The data are
MNIST-1D (40-d signals, 10 classes; ``learnfast.data.mnist1d``, generated locally) instead of
MNIST. A problem is 1000 examples drawn from its part: meta-training problems from the first 3000
examples of MNIST-1D's training split, validation problems from its last 1000, held-out test
problems from its test split, so no held-out example is ever seen in meta-training.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from ..data.mnist1d import CLASSES, FEATURES, mnist1d
from ..models.mlp import MLP
from ..tasks import Task
from .problems import Optimizee, problem_seeds, problem_task

EXAMPLES = 1000  # examples per problem
TRAIN_EXAMPLES = 3000  # of the 4000 in MNIST-1D's training split; the rest are the validation pool
HIDDEN, ACTIVATION, BATCH_SIZE = (20,), "sigmoid", 128


def mlp_optimizee(hidden: Sequence[int] = HIDDEN, activation: str = ACTIVATION, batch_size: int = BATCH_SIZE) -> Optimizee:
    """An MLP ``40 -> hidden... -> 10`` with ``activation``, cross-entropy on mini-batches of ``batch_size``."""
    return Optimizee(MLP(FEATURES, tuple(hidden), CLASSES, activation), F.cross_entropy, batch_size, expects=(FEATURES,), name="mlp")


class MNIST1DProblems:
    """Samples MNIST-1D problems: ``support_x (B, 1000, 40)``, ``support_y (B, 1000)`` from ``part``'s pool.

    Args:
        part: ``"train"`` (3000 examples), ``"val"`` (1000) or ``"test"`` (MNIST-1D's test split, 1000).
        examples: examples per problem (at most the pool's size).
    """

    PARTS = ("train", "val", "test")

    def __init__(self, part: str = "train", examples: int = EXAMPLES) -> None:
        if part not in self.PARTS:
            raise ValueError(f"part must be one of {self.PARTS}, got {part!r}")
        data = mnist1d()
        if part == "test":
            self.x, self.y = data.x_test, data.y_test
        else:
            rows = slice(0, TRAIN_EXAMPLES) if part == "train" else slice(TRAIN_EXAMPLES, None)
            self.x, self.y = data.x_train[rows], data.y_train[rows]
        if not 1 <= examples <= len(self.y):
            raise ValueError(f"examples must be in 1..{len(self.y)} for part {part!r}, got {examples}")
        self.part, self.examples = part, examples

    def for_part(self, part: str) -> "MNIST1DProblems":
        return MNIST1DProblems(part, self.examples)

    def sample(self, count: int, generator: torch.Generator) -> Task:
        rows = torch.stack([torch.randperm(len(self.y), generator=generator)[: self.examples] for _ in range(count)])
        return problem_task(self.x[rows], self.y[rows], problem_seeds(count, generator))
