"""Baseline and Baseline++: a classifier pretrained on all training classes, a new head per task.

Chen, Liu, Kira, Wang & Huang (2019). A Closer Look at Few-shot Classification. ICLR.
Finn, Abbeel & Levine (2017), section 5.1: the "pretrained on all tasks, then fine-tuned" baseline.

The backbone is first trained as an ordinary classifier over every meta-training class (the
trainer's ``[pretrain]`` phase, whose classifier comes from :meth:`Baseline.pretrain_head`). For a
new task that classifier is discarded, the backbone frozen, and a new head of the task's ``ways``
classes is fitted to the support features by a few steps of the shared inner loop, then predicts
the query features. Baseline's heads are linear; Baseline++'s score each class by the cosine
similarity between the feature and the class's weight vector times a learned scale, which Chen et
al. find reduces intra-class variation and helps most with shallow backbones.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import vmap

from .._types import Params
from ..batchnorm import support_statistics
from ..functional import forward_with, prototypes
from ..inner import InnerLoop, adam, adapt, inner_loop, sgd
from ..models.probe import like_model, output_shape
from ..tasks import Task, check_batch
from .base import Algorithm, MetaOutput, implicit_options, inner_steps_pair, query_loss

CLASSIFIERS = ("linear", "cosine")


class CosineClassifier(nn.Module):
    """``logits[n, c] = scale * cos(x[n], weight[c])``.

    Args:
        in_features: feature size ``D``.
        out_features: number of classes ``C``.
        scale: initial value of the learned scale, or an ``nn.Parameter`` to share (Baseline++
            shares its scale between the pretraining classifier and the per-task heads).

    Shapes: ``(n, D) -> (n, C)``.
    """

    def __init__(self, in_features: int, out_features: int, scale: float | nn.Parameter = 10.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # nn.Linear's initialisation
        self.scale = scale if isinstance(scale, nn.Parameter) else nn.Parameter(torch.tensor(float(scale)))

    def forward(self, x: Tensor) -> Tensor:
        return self.scale * F.normalize(x, dim=-1) @ F.normalize(self.weight, dim=-1).T


def feature_size(model: nn.Module) -> int:
    """``D`` of a backbone that maps ``(n, ...)`` to feature vectors ``(n, D)``."""
    shape = output_shape(model)
    if len(shape) != 1:
        raise ValueError(
            f"{type(model).__name__} returns feature maps of shape {shape}; a classifier on top needs feature "
            f"vectors (n, D): use a backbone without a head that ends in a vector (conv4, conv4-strided, mlp)"
        )
    return shape[0]


def frozen_backbone_loop(memory: str, bn: str, strategy: str, implicit_lambda: float | None = None, cg_steps: int | None = None,
                         cg_damping: float | None = None) -> InnerLoop:
    """The checked inner-loop settings of an algorithm that adapts only a head on a backbone's features.

    The iMAML settings (``None``: not given) are an error unless ``memory == "implicit"``.
    """
    if bn == "per-step":
        raise ValueError("bn='per-step' gives each inner step its own BatchNorm parameters, but here the backbone runs once "
                         "per task, before the head's steps; use bn='transductive' or 'support'")
    return inner_loop(memory, False, bn, strategy, **implicit_options(memory, implicit_lambda, cg_steps, cg_damping))


def task_features(model: nn.Module, params: Params, support_x: Tensor, query_x: Tensor, bn: str) -> Tensor:
    """Features ``(S+Q, D)`` of one task's support and query items, in one forward call.

    ``bn="transductive"``: BatchNorm normalises with the statistics of support and query together;
    ``"support"``: with the support items' only, so each query's features depend on it and the
    support set alone.
    """
    x = torch.cat([support_x, query_x])
    if bn == "support":
        with support_statistics(model, support_x.shape[0]):
            return forward_with(model, params, x)
    return forward_with(model, params, x)


class Baseline(Algorithm):
    """Baseline (``classifier="linear"``) and Baseline++ (``classifier="cosine"``) over any feature backbone.

    Per task, support and query go through the backbone in one call (BatchNorm per ``bn``, never
    across tasks); then ``inner_steps`` full-batch steps of :func:`learnfast.adapt` fit a new head
    on the support features alone. The linear head starts at zero; the cosine head starts at the
    support class means (weight imprinting), with the learned scale held fixed. Either start is
    deterministic, so a forward call is a pure function of the task.

    ``meta_loss`` is the query loss of those fitted heads: its gradient reaches the backbone (and
    the scale) through the query features and, second order, through the head's inner steps. The
    paper has no such episodic stage (set ``[train] iterations = 0``); it is what fine-tuning the
    pretrained backbone on episodes would use.

    Args:
        model: the feature backbone ``(n, ...) -> (n, D)`` (no output layer).
        classifier: ``"linear"`` (Baseline) or ``"cosine"`` (Baseline++).
        inner_lr: step size of the per-task head's update rule.
        inner_steps: head-fitting steps while meta-training.
        eval_inner_steps: head-fitting steps at test time (default: ``inner_steps``).
        inner_optimizer: ``"sgd"`` or ``"adam"`` (default betas) for the head's steps.
        scale: initial scale of the cosine classifiers (default 10.0); ``"linear"`` has none, so
            giving it there is an error.
        strategy: tasks of a batch one by one (``"loop"``) or under ``vmap`` (``"vmap"``); the
            others of ``STRATEGIES`` are an error.
        memory: how ``meta_loss`` differentiates through the head's steps: ``"second-order"``,
            ``"first-order"``, ``"checkpoint"`` (``strategy="loop"``) or ``"implicit"`` (lambda 1,
            5 conjugate-gradient steps); see ``learnfast.inner``.
        bn: BatchNorm policy of the backbone, ``"transductive"`` or ``"support"``
            (:func:`task_features`).

    Returns (forward): logits ``(B, Q, ways)``.

    Example:
        >>> baseline = Baseline(Conv4(), classifier="cosine", inner_steps=100)
        >>> head = baseline.pretrain_head(4400)     # the trainer's [pretrain] phase trains model + head
        >>> baseline(batch).shape                   # (B, Q, ways), each task with its own new head
        torch.Size([2, 10, 5])

    References:
        Chen et al. (2019), https://arxiv.org/abs/1904.04232
    """

    needs_head = False
    strategies = ("loop", "vmap")

    def __init__(
        self,
        model: nn.Module,
        classifier: str = "linear",
        inner_lr: float = 0.01,
        inner_steps: int = 100,
        eval_inner_steps: int | None = None,
        inner_optimizer: str = "sgd",
        scale: float | None = None,
        strategy: str = "loop",
        memory: str = "second-order",
        bn: str = "transductive",
    ) -> None:
        super().__init__(loss="cross_entropy", strategy=strategy)
        if classifier not in CLASSIFIERS:
            raise ValueError(f"unknown classifier {classifier!r}; choose 'linear' (Baseline) or 'cosine' (Baseline++)")
        if inner_optimizer not in ("sgd", "adam"):
            raise ValueError(f"unknown inner_optimizer {inner_optimizer!r}; choose 'sgd' or 'adam'")
        if scale is not None and classifier != "cosine":
            raise ValueError(f"scale={scale} sets the cosine classifiers' initial scale, and classifier={classifier!r} has none; "
                             f"drop scale, or use classifier='cosine' (Baseline++)")
        self.model, self.classifier = model, classifier
        self.inner_lr, self.inner_optimizer = inner_lr, inner_optimizer
        self.inner_steps, self.eval_inner_steps = inner_steps_pair(inner_steps, eval_inner_steps)
        self.inner = frozen_backbone_loop(memory, bn, strategy)
        if classifier == "cosine":
            self.scale = nn.Parameter(torch.tensor(10.0 if scale is None else float(scale)))
            like_model(self, model)  # the scale in the backbone's dtype and device

    def pretrain_head(self, classes: int) -> nn.Module:
        """The classifier over all ``classes`` training classes for the pretraining phase (discarded after it)."""
        d = feature_size(self.model)
        head = CosineClassifier(d, classes, scale=self.scale) if self.classifier == "cosine" else nn.Linear(d, classes)
        return like_model(head, self.model)

    def _start(self, support_z: Tensor, support_y: Tensor, ways: int) -> Params:
        """The new head's starting parameters for one task's support features ``(S, D)``."""
        if self.classifier == "cosine":
            return {"weight": prototypes(support_z[None], support_y[None], ways)[0], "scale": self.scale}
        d = support_z.shape[-1]
        return {"weight": support_z.new_zeros(ways, d), "bias": support_z.new_zeros(ways)}

    def forward(self, batch: Task, inner_steps: int | None = None) -> Tensor:
        check_batch(batch)
        steps = self.default_steps() if inner_steps is None else inner_steps
        ways = int(batch.support_y.max()) + 1
        update = adam(self.inner_lr) if self.inner_optimizer == "adam" else sgd(self.inner_lr)

        s = batch.support_x.shape[1]
        features = lambda support_x, query_x: task_features(self.model, {}, support_x, query_x, self.inner.bn)
        z = self._per_task(features, batch.support_x, batch.query_x)  # (B, S+Q, D)
        with torch.device("meta"):  # structure only: the weights come from the parameter dict
            head = CosineClassifier(z.shape[-1], ways) if self.classifier == "cosine" else nn.Linear(z.shape[-1], ways)

        def fit_and_predict(support_z: Tensor, support_y: Tensor, query_z: Tensor) -> Tensor:
            fitted = adapt(
                head, self._start(support_z, support_y, ways), support_z, support_y, self.loss_fn, steps=steps, update=update,
                adapt_keys=["weight"] if self.classifier == "cosine" else None,
                memory=self.inner.memory, implicit=self.inner.implicit,
            )
            return forward_with(head, fitted, query_z)  # (Q, ways)

        return self._per_task(fit_and_predict, z[:, :s], batch.support_y, z[:, s:])

    def _per_task(self, fn, *fields: Tensor) -> Tensor:
        """``fn`` over the tasks of a batch of ``fields`` (each ``(B, ...)``), under ``vmap`` or one by one."""
        if self.strategy == "vmap" and fields[0].shape[0] > 1:
            return vmap(fn)(*fields)
        return torch.stack([fn(*(f[i] for f in fields)) for i in range(fields[0].shape[0])])

    def meta_loss(self, batch: Task, generator: torch.Generator | None = None) -> MetaOutput:
        logits = self(batch)
        return MetaOutput(query_loss(self.loss_fn, logits, batch.query_y), logits.detach())
