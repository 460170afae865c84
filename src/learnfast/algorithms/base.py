"""The algorithm contract and the meta-batch execution strategies.

An algorithm is an ``nn.Module`` whose ``forward(batch)`` adapts to each task's support set inside
the call and returns query predictions ``(B, Q, ...)``; it keeps no state between calls.
``meta_loss(batch)`` returns the scalar the trainer backpropagates.

Gradient-based algorithms write one pure function, ``task_loss(meta_params, task)``, for a single
task; the meta-batch then runs with a *strategy*:

``loop``  the reference: a Python loop over tasks, meta-gradients through ordinary autograd.
``vmap``  ``vmap(grad(task_loss))`` over per-task copies of the meta-parameters. This order is
          exact; ``grad(vmap(...))`` is not (torch 2.13 gives a wrong second-order meta-gradient
          through conv + BatchNorm with a learnable scale, see ``tests/test_strategies.py``).
``threads`` the loop's per-task gradients on worker threads, channels-last (``strategies.py``).
``auto``  the measured fastest for the batch's device: ``threads`` on CPU, ``vmap`` on accelerators.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import grad, vmap
from torch.utils._pytree import tree_leaves, tree_map

from .._types import Params
from ..functional import detach, expand
from ..tasks import Task, check_batch, task_at
from .strategies import STRATEGIES, resolve_strategy, threads_meta_gradient, threads_predict

LOSSES = {"cross_entropy": F.cross_entropy, "mse": F.mse_loss}


class MetaOutput(NamedTuple):
    """What ``meta_loss`` returns.

    ``loss``: scalar to backpropagate (its gradient is the meta-gradient, its value the mean query loss).
    ``predictions``: detached query predictions ``(B, Q, ...)`` for training metrics; ``None`` when the
    algorithm skipped them (``Algorithm.training_figures`` false), and then the loss value is not a figure either.
    """

    loss: Tensor
    predictions: Tensor | None


def inner_steps_pair(inner_steps: int, eval_inner_steps: int | None) -> tuple[int, int]:
    """Validated ``(inner_steps, eval_inner_steps)``; test-time steps default to the training ones."""
    if inner_steps < 0 or (eval_inner_steps is not None and eval_inner_steps < 0):
        raise ValueError(f"inner_steps and eval_inner_steps must be >= 0, got {inner_steps} and {eval_inner_steps}")
    return inner_steps, inner_steps if eval_inner_steps is None else eval_inner_steps


def implicit_options(memory: str | None, implicit_lambda: float | None, cg_steps: int | None, cg_damping: float | None) -> dict[str, float]:
    """The iMAML solver options that were given, as ``inner_loop`` keywords; an error unless ``memory == "implicit"``.

    ``None`` means "not given" (``inner_loop``'s defaults: lambda 1, 5 CG steps, no damping), so a
    setting that the chosen memory option would ignore cannot pass silently.
    """
    given = {k: v for k, v in (("implicit_lambda", implicit_lambda), ("cg_steps", cg_steps), ("cg_damping", cg_damping)) if v is not None}
    if given and memory != "implicit":
        names = " and ".join(given)
        raise ValueError(f"{names} {'is a setting' if len(given) == 1 else 'are settings'} of iMAML's implicit solve, which "
                         f"memory={memory!r} does not run; drop {names} or use memory='implicit'")
    return given


def submodule_params(meta_params: Params, prefix: str = "model.") -> Params:
    """The meta-parameters under ``prefix``, keyed relative to that submodule (the keys ``adapt`` sees)."""
    return {k[len(prefix):]: v for k, v in meta_params.items() if k.startswith(prefix)}


def per_task(fn, *args):
    """``fn`` applied to each task's items in one call: ``(B, n, ...) -> (B, n, ...)``.

    ``args`` are tensors (or dicts / tuples of tensors, e.g. per-task parameters) with a leading
    task dimension B; task i gets ``fn(*args[i])``. One call per task keeps BatchNorm statistics
    per task. On CPU the calls run one after another: each then takes the channels-last oneDNN
    kernels, where ``vmap``'s batching rules for BatchNorm and max-pool copy into the default
    layout; Conv4 forward+backward is 2.2-3.7x faster so (``benchmarks/per_task_speed.py``).
    Elsewhere tasks run under ``vmap``, one launch per layer. A batch of one is a plain call.
    """
    first = tree_leaves(args)[0]
    if first.shape[0] == 1 or first.device.type == "cpu":
        return torch.stack([fn(*tree_map(lambda t: t[i], args)) for i in range(first.shape[0])])
    return vmap(fn)(*args)


def resolve_loss(name: str):
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; choose one of {sorted(LOSSES)}")
    return LOSSES[name]


def query_loss(loss_fn, predictions: Tensor, targets: Tensor) -> Tensor:
    """Loss over a batch of query sets: ``(B, Q, C)`` logits with ``(B, Q)`` labels, or matching regression shapes."""
    return loss_fn(predictions.flatten(0, 1), targets.flatten(0, 1))


class Algorithm(nn.Module):
    """Base class: declares the contract; concrete algorithms are final.

    Subclasses either implement ``task_loss`` (gradient-based: the strategy batches it) or override
    ``forward`` and ``meta_loss`` directly (metric-based: natively batched).
    """

    needs_head: bool = True  # does the backbone end in an output layer of size `ways`?
    freezable: bool = False  # calls its backbone as a plain module, so [model] freeze can hold it fixed
    strategies: tuple[str, ...] = STRATEGIES  # the meta-batch strategies it runs; any other is an error
    learned_optimizer: bool = False  # meta-trains an update rule on optimization problems (learnfast.optim), no backbone
    reinforcement: bool = False  # meta-trains a policy on a meta-RL task family (learnfast.rl); builds its own policy
    eval_batch_size: int | None = None  # episodes per call in evaluation; None: evaluate's default for the device
    # set by the trainer before each meta_loss: False when nobody reads this iteration's loss value and predictions
    # (not logged, no progress bar); an algorithm may then skip work done only for them and return predictions=None
    training_figures: bool = True
    # consecutive outer steps the trainer takes on each sampled meta-batch (ProMP reuses its trajectories; 1: a new one each step)
    steps_per_batch: int = 1

    def __init__(self, loss: str = "cross_entropy", strategy: str = "loop") -> None:
        super().__init__()
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; choose one of {STRATEGIES}")
        if strategy not in self.strategies:
            raise ValueError(f"{type(self).__name__} cannot run strategy={strategy!r}: its meta-batch runs only as "
                             f"{' or '.join(map(repr, self.strategies))}; choose one of {self.strategies}")
        self.loss_name, self.loss_fn, self.strategy = loss, resolve_loss(loss), strategy

    def extra_report(self, source, episodes: int, seed: int) -> dict[str, Any]:
        """Extra figures of the evaluation report, beside mean ± CI; ``learnfast eval`` prints and stores them.

        Args:
            source: the task source just evaluated (``.sample(batch_size, generator) -> Task``; an
                :class:`~learnfast.episodes.EpisodeSampler` has ``.spec``).
            episodes: the number of fixed episodes evaluated; ``seed``: which fixed set
                (:func:`learnfast.protocol.fixed_episodes`).

        Returns: ``{name: value}``, JSON-serialisable (string keys); ``{}`` (the default) for none.
        """
        return {}

    def execution_strategy(self, batch: Task) -> str:
        """The strategy that runs ``batch``: ``self.strategy``, with ``"auto"`` resolved for the batch's device."""
        inner = getattr(self, "inner", None)
        return resolve_strategy(self.strategy, batch.support_x.device, vmap_ok=getattr(inner, "memory", None) != "checkpoint")

    # -- for gradient-based algorithms -------------------------------------------------------
    def meta_params(self) -> Params:
        """All meta-parameters, keyed like ``self.named_parameters()``."""
        return {k: v for k, v in self.named_parameters() if v.requires_grad}

    def task_predict(self, meta_params: Params, task: Task, inner_steps: int) -> Tensor:
        """Adapts to one task's support set and predicts its query set ``(Q, ...)``. Pure."""
        raise NotImplementedError

    def task_loss(self, meta_params: Params, task: Task, inner_steps: int) -> tuple[Tensor, Tensor]:
        """Query loss of one task after adaptation, and the query predictions. Pure."""
        predictions = self.task_predict(meta_params, task, inner_steps)
        return self.loss_fn(predictions, task.query_y), predictions

    def default_steps(self) -> int:
        """Inner steps of a forward call: ``inner_steps`` in training mode, ``eval_inner_steps`` in eval mode."""
        return self.inner_steps if self.training else self.eval_inner_steps

    def forward(self, batch: Task, inner_steps: int | None = None) -> Tensor:
        """Query predictions ``(B, Q, ...)`` for a batch of tasks, each adapted to its own support set."""
        check_batch(batch)
        steps = self.default_steps() if inner_steps is None else inner_steps
        meta_params = self.meta_params()
        # vmap over shared meta-parameters is grad(vmap(.)) under backward: wrong through BatchNorm,
        # so it serves only prediction; a differentiable forward takes the reference loop.
        needs_grad = torch.is_grad_enabled() and any(p.requires_grad for p in meta_params.values())
        strategy = self.execution_strategy(batch)
        if strategy == "vmap" and not needs_grad:
            predict = lambda p, *fields: self.task_predict(p, Task(*fields), steps)
            return vmap(predict, in_dims=(None, 0, 0, 0, 0))(meta_params, *batch)
        if strategy == "threads" and not needs_grad:
            return threads_predict(self, meta_params, batch, steps)
        return torch.stack([self.task_predict(meta_params, task_at(batch, i), steps) for i in range(batch.batch_size)])

    def meta_loss(self, batch: Task, generator: torch.Generator | None = None) -> MetaOutput:
        """Mean query loss over the batch after adaptation; backward gives the meta-gradient.

        ``generator``: randomness of the meta-loss itself, passed in by the trainer (Reptile's inner
        mini-batches); algorithms whose meta-loss is deterministic given the batch do not draw from it.
        """
        check_batch(batch)
        steps = self.default_steps()
        meta_params = self.meta_params()
        strategy = self.execution_strategy(batch)
        if strategy == "loop":
            losses, predictions = zip(*(self.task_loss(meta_params, task_at(batch, i), steps) for i in range(batch.batch_size)))
            return MetaOutput(torch.stack(losses).mean(), torch.stack(predictions).detach())
        if strategy == "threads":
            mean_grads, losses, predictions = threads_meta_gradient(self, meta_params, batch, steps)
        else:
            def one_task(p: Params, *fields: Tensor):
                loss, predictions = self.task_loss(p, Task(*fields), steps)
                return loss, (loss, predictions)

            # vmap(grad(.)) over per-task copies of detached meta-parameters: exact, and no outer graph.
            grads, (losses, predictions) = vmap(grad(one_task, has_aux=True))(expand(detach(meta_params), batch.batch_size), *batch)
            mean_grads = {k: g.mean(0) for k, g in grads.items()}
        surrogate = sum(((meta_params[k] * g).sum() for k, g in mean_grads.items()), losses.new_zeros(()))
        # value = mean query loss, gradient = mean per-task meta-gradient
        loss = surrogate - surrogate.detach() + losses.mean()
        return MetaOutput(loss, predictions.detach())
