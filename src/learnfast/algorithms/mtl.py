"""Meta-transfer learning: scale and shift a frozen pretrained backbone, meta-learn the head's start.

Sun, Liu, Chua & Schiele (2019). Meta-Transfer Learning for Few-Shot Learning. CVPR.

MTL starts from a backbone pretrained as a classifier over all meta-training classes (the trainer's
``[pretrain]`` phase, shared with Baseline) and freezes it. What it meta-learns is light: for every
convolution and linear layer of the backbone a scale per kernel and a shift per output channel,
applied as ``W * scale`` and ``b + shift`` and starting at 1 and 0, so that meta-training starts
from the pretrained features exactly; and the initialisation of a classifier head. Each task
fine-tunes only the head, MAML-style, on its support features, and the meta-gradient reaches the
scales, shifts and head initialisation through those steps. Few parameters move, so what the
backbone learned is not forgotten. The paper's hard-task meta-batches (re-sampling the classes
each task failed on most) are a trainer option, ``[train] hard_task_every``.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn.modules.conv import _ConvNd

from .._types import Params
from ..functional import Mirror, forward_with
from ..inner import adapt, sgd
from ..models.probe import like_model
from ..tasks import Task
from .base import Algorithm, inner_steps_pair, submodule_params
from .baseline import feature_size, frozen_backbone_loop, task_features

MODEL, SCALE, SHIFT, HEAD = "model.", "scale.", "shift.", "head."


def scaled_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The convolutions and linear layers of ``model`` (those MTL scales and shifts), with their names."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, (_ConvNd, nn.Linear))]


def _key(module_name: str, leaf: str) -> str:
    return f"{module_name}.{leaf}" if module_name else leaf


class MTL(Algorithm):
    """Meta-transfer learning over any feature backbone ``(n, ...) -> (n, D)`` (no output layer).

    Meta-parameters: ``scale.<name>`` for the weight ``<name>`` of every conv / linear layer, shaped
    ``(out, in, 1, ...)`` (one factor per kernel, as in the authors' code); ``shift.<name>`` for
    each of their biases, shaped like it; ``head.weight (ways, D)`` and ``head.bias (ways,)``, the
    head's initialisation. The backbone (``model.*``) is frozen: it enters every forward pass
    detached and is not in :meth:`meta_params`; only the pretraining phase trains it.

    Per task, support and query go through the scaled backbone in one call (BatchNorm per ``bn``,
    never across tasks), then ``inner_steps`` SGD steps of :func:`learnfast.adapt` fine-tune the
    head on the support features.

    Args:
        model: the feature backbone, pretrained (``[pretrain]`` phase) or not.
        ways: classes per task, the size of the head (the config fills in ``train.ways``).
        inner_lr: SGD step size of the head's inner loop.
        inner_steps: inner steps while meta-training.
        eval_inner_steps: inner steps at test time (default: ``inner_steps``).
        strategy: meta-batch execution: ``"loop"`` (reference), ``"vmap"``, ``"threads"`` or ``"auto"``
            (``algorithms/strategies.py``).
        memory: ``"second-order"``, ``"first-order"``, ``"checkpoint"`` (``strategy="loop"`` only)
            or ``"implicit"`` (iMAML on the head); see ``learnfast.inner``.
        implicit_lambda: iMAML's proximal strength lambda (``memory="implicit"``).
        cg_steps: conjugate-gradient iterations of the implicit solve.
        cg_damping: adds ``cg_damping * I`` to the implicit system ``I + H/lambda``.
        bn: BatchNorm policy of the backbone, ``"transductive"`` or ``"support"``
            (:func:`learnfast.algorithms.baseline.task_features`).
        learn_head_init: meta-learn the head initialisation (the paper), or keep it at zero for
            every task (``False``; the "zeroing trick" of Kao et al. 2022). Labels are assigned to
            classes at random per task, so a learned start can only help by a part shared by all
            classes; under Adam its per-class parts random-walk instead. ``False`` departs from the
            paper; the named Omniglot config uses it (measurements: ``docs/reproduction.md``).

    Example:
        >>> mtl = MTL(pretrained_conv4, ways=5, inner_lr=0.1, inner_steps=10)
        >>> mtl.meta_loss(batch).loss.backward()      # grads on scale.*, shift.*, head.*; none on model.*

    References:
        Sun et al. (2019), https://arxiv.org/abs/1812.02391
    """

    needs_head = False

    def __init__(
        self,
        model: nn.Module,
        ways: int = 5,
        inner_lr: float = 0.1,
        inner_steps: int = 10,
        eval_inner_steps: int | None = None,
        strategy: str = "loop",
        memory: str = "second-order",
        implicit_lambda: float | None = None,
        cg_steps: int | None = None,
        cg_damping: float | None = None,
        bn: str = "transductive",
        learn_head_init: bool = True,
    ) -> None:
        super().__init__(loss="cross_entropy", strategy=strategy)
        if not isinstance(ways, int) or ways < 1:
            raise ValueError(f"ways must be a positive integer (classes per task), got {ways!r}")
        layers = scaled_layers(model)
        if not layers:
            raise ValueError(f"{type(model).__name__} has no convolution or linear layer for MTL to scale and shift")
        self.model, self.ways, self.inner_lr = model, ways, inner_lr
        self.inner_steps, self.eval_inner_steps = inner_steps_pair(inner_steps, eval_inner_steps)
        self.inner = frozen_backbone_loop(memory, bn, strategy, implicit_lambda, cg_steps, cg_damping)
        ones, zeros = {}, {}
        for name, layer in layers:
            w = layer.weight  # (out, in, *kernel): one scale per kernel
            ones[_key(name, "weight")] = w.new_ones(*w.shape[:2], *(1,) * (w.dim() - 2)).detach()
            if layer.bias is not None:
                zeros[_key(name, "bias")] = torch.zeros_like(layer.bias).detach()
        self.scale, self.shift = Mirror(ones), Mirror(zeros)
        # The head initialisation starts at zero, like the baseline's new head: the inner loop then
        # keeps it in the span of the support features. A random start keeps a part outside that
        # span that a one-shot support set never corrects (vinyals validation, the pretrained
        # backbone before meta-training: 89.6 % from a random head, 98.1 % from zero, 100 steps).
        self.head = like_model(nn.Linear(feature_size(model), ways), model)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        if not learn_head_init:  # the "zeroing trick": every task's head starts at zero, scales and shifts are meta-learned
            self.head.requires_grad_(False)

    def pretrain_head(self, classes: int) -> nn.Module:
        """The linear classifier over all ``classes`` training classes for the pretraining phase (discarded after it)."""
        return like_model(nn.Linear(feature_size(self.model), classes), self.model)

    def meta_params(self) -> Params:
        """Scales, shifts and the head initialisation; the pretrained backbone (``model.*``) is frozen."""
        return {k: v for k, v in super().meta_params().items() if not k.startswith(MODEL)}

    def transferred(self, meta_params: Params) -> Params:
        """The backbone's parameters with ``W * scale`` and ``b + shift`` applied; ``W`` and ``b`` detached."""
        # scales or shifts frozen with requires_grad_(False) are not meta-parameters: use the modules' own
        scales = {**self.scale.as_dict(), **submodule_params(meta_params, SCALE)}
        shifts = {**self.shift.as_dict(), **submodule_params(meta_params, SHIFT)}
        params = {k: p.detach() for k, p in self.model.named_parameters()}
        params.update({k: params[k] * s for k, s in scales.items()})
        params.update({k: params[k] + s for k, s in shifts.items()})
        return params

    def task_predict(self, meta_params: Params, task: Task, inner_steps: int) -> Tensor:
        s = task.support_x.shape[0]
        z = task_features(self.model, self.transferred(meta_params), task.support_x, task.query_x, self.inner.bn)  # (S+Q, D)
        start = {**dict(self.head.named_parameters()), **submodule_params(meta_params, HEAD)}
        fast = adapt(
            self.head, start, z[:s], task.support_y, self.loss_fn, steps=inner_steps, update=sgd(self.inner_lr),
            memory=self.inner.memory, implicit=self.inner.implicit,
        )
        return forward_with(self.head, fast, z[s:])  # (Q, ways)
