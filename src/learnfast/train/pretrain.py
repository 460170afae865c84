"""The pretraining phase: an algorithm's backbone trained as a classifier over all training classes.

Baseline / Baseline++ (Chen et al. 2019) and meta-transfer learning (Sun et al. 2019) start this
way. An algorithm takes part by having a feature backbone ``model`` and a method
``pretrain_head(classes) -> nn.Module``, the classifier put on top of it for this phase and thrown
away after it. The trainer runs the phase before meta-training (``[pretrain] iterations > 0``) and
checkpoints it like the rest (:class:`Pretraining` holds its state).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..algorithms import ALGORITHMS, Algorithm
from .config import ConfigError, PretrainConfig
from .optim import make_optimizer, scheduled_lr, set_lr


class ClassBatches:
    """Mini-batches ``(inputs, labels)`` of a labelled dataset, items drawn uniformly with replacement.

    Labels are renumbered ``0..num_classes-1`` in the order of the sorted class ids.

    Args:
        inputs: ``(n_items, ...)`` inputs (any dtype; converted by ``transform``).
        labels: ``(n_items,)`` integer class ids.
        transform: applied to each sampled input batch, e.g. uint8 -> float.
    """

    def __init__(self, inputs: Tensor, labels: Tensor, transform: Callable[[Tensor], Tensor] | None = None) -> None:
        if inputs.shape[0] == 0 or labels.shape != inputs.shape[:1]:
            raise ValueError(f"need one integer label per input, got inputs {tuple(inputs.shape)} and labels {tuple(labels.shape)}")
        self.inputs, self.transform = inputs, transform
        self.class_ids, self.labels = torch.unique(labels, return_inverse=True)

    @property
    def num_classes(self) -> int:
        return self.class_ids.numel()

    def sample(self, batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """``(batch_size, ...)`` inputs and their ``(batch_size,)`` labels."""
        items = torch.randint(self.inputs.shape[0], (batch_size,), generator=generator)
        x = self.inputs[items]
        return (self.transform(x) if self.transform is not None else x), self.labels[items]


def pretrainable() -> list[str]:
    """Registered algorithms with a pretraining phase."""
    return sorted(name for name, cls in ALGORITHMS.items() if hasattr(cls, "pretrain_head"))


def check_pretrain(cfg: PretrainConfig, algorithm_name: str) -> None:
    if cfg.iterations < 0 or cfg.batch_size < 1:
        raise ConfigError(f"[pretrain] iterations = {cfg.iterations} must be >= 0 and batch_size = {cfg.batch_size} >= 1")
    if cfg.iterations and algorithm_name not in pretrainable():
        raise ConfigError(
            f"[pretrain] iterations = {cfg.iterations}, but {algorithm_name} has no pretraining phase; "
            f"it is for {', '.join(pretrainable())}. Set [pretrain] iterations = 0"
        )


class Pretraining:
    """State of the pretraining phase: the classifier head, its optimizer, batch stream and step count.

    The optimizer trains ``algorithm.model`` and the head together (a parameter shared between them,
    such as Baseline++'s scale, once); the algorithm's other parameters stay as they are.

    Args:
        algorithm: a pretrainable algorithm (see :func:`pretrainable`).
        batches: the training classes, e.g. :class:`ClassBatches` of the train split.
        cfg: the ``[pretrain]`` section.
        seed: seeds the head's initialisation and the batch stream.
        device: where the head and the batches go (the algorithm's device).
    """

    def __init__(self, algorithm: Algorithm, batches: ClassBatches, cfg: PretrainConfig, seed: int,
                 device: torch.device = torch.device("cpu")) -> None:
        self.model, self.batches, self.cfg, self.device = algorithm.model, batches, cfg, device
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.head: nn.Module = algorithm.pretrain_head(batches.num_classes).to(device)
        shared = {id(p) for p in algorithm.parameters()}
        # the head's own entries; one it shares with the algorithm is saved and loaded with the algorithm
        self.head_keys = [k for k, v in self.head.state_dict(keep_vars=True).items() if id(v) not in shared]
        params = list({id(p): p for p in [*self.model.parameters(), *self.head.parameters()]}.values())
        self.optimizer = make_optimizer(params, cfg)
        self.generator = torch.Generator().manual_seed(seed)
        self.iteration = 0

    def head_state(self) -> dict[str, Tensor]:
        """The head's weights that are not the algorithm's (for a checkpoint)."""
        state = self.head.state_dict()
        return {k: state[k] for k in self.head_keys}

    def load_head_state(self, state: dict[str, Tensor]) -> None:
        missing, unexpected = self.head.load_state_dict(state, strict=False)
        if unexpected or set(missing) & set(self.head_keys):
            raise ValueError(f"pretraining head weights do not fit: missing {missing}, unexpected {unexpected}")

    def loss(self) -> tuple[Tensor, dict[str, float]]:
        """The classification loss of the next batch (at the scheduled learning rate), and its record."""
        lr = scheduled_lr(self.cfg, self.iteration, self.cfg.iterations)
        set_lr(self.optimizer, lr)
        x, y = self.batches.sample(self.cfg.batch_size, self.generator)
        x, y = x.to(self.device), y.to(self.device)
        logits = self.head(self.model(x))  # (batch_size, classes)
        loss = F.cross_entropy(logits, y)
        accuracy = (logits.argmax(-1) == y).float().mean().item()
        return loss, {"phase": "pretrain", "iteration": self.iteration + 1, "loss": loss.item(), "accuracy": accuracy, "lr": lr}
