"""Optimization problems for learned optimizers, and the optimizee that trains on them.

A *problem* travels as one task of a :class:`~learnfast.tasks.Task` batch, so sets of problems go
through the project's trainer and evaluation protocol (fixed seeded sets, 95% CI) unchanged:

==========  =====================  ================================================================
field       shape                  meaning
==========  =====================  ================================================================
support_x   ``(B, n, ...)``        the examples the objective averages over (quadratic: rows of W)
support_y   ``(B, n, ...)``        their targets (quadratic: y)
query_x     ``(B, 1)`` int64       the problem's seed: its initial parameters and mini-batch order
query_y     ``(B, 1)``             0, a lower bound of every loss here (no prediction targets)
==========  =====================  ================================================================

An :class:`Optimizee` is the other half: a plain ``nn.Module`` (driven through
``torch.func.functional_call``, never rewritten), its loss, and the mini-batch size. From a
batch of problems it draws the initial parameters as a ``Params`` dict with a leading problem
dimension, the mini-batch of every step, and the losses ``(B,)`` of parameters on a batch.
A problem source is anything with ``sample(count, generator) -> Task`` of this layout and
``for_part(part)``, the same family over another part (``"train"``, ``"val"``, ``"test"``).
"""
from __future__ import annotations

import copy

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from .._types import LossFn, Params
from ..inner import minibatch_order
from ..tasks import Task

ORDER_SALT = 0x9E3779B97F4A7C15 % 2**62  # the mini-batch order's seed differs from the initialisation's


def problem_seeds(count: int, generator: torch.Generator) -> Tensor:
    """``(count, 1)`` int64 seeds of ``count`` problems, drawn from ``generator``."""
    return torch.randint(0, 2**62, (count, 1), generator=generator)


def problem_task(support_x: Tensor, support_y: Tensor, seeds: Tensor) -> Task:
    """The Task layout of a batch of problems (module docstring); ``seeds (B, 1)``."""
    return Task(support_x, support_y, seeds, torch.zeros(seeds.shape, dtype=support_x.dtype))


class Optimizee:
    """A network and its objective, as a learned optimizer sees them.

    Args:
        model: the optimizee (a plain ``nn.Module``); only its structure and its modules'
            ``reset_parameters`` are used, each problem's parameters are drawn from its seed.
        loss_fn: ``loss_fn(model(x), y) -> scalar`` for one problem.
        batch_size: examples per step (drawn without replacement within an epoch, per problem);
            ``None``: every step sees all of a problem's examples.
        expects: ``support_x``'s shape after the problem and example dimensions (checked, for a
            clear error when problems of another family arrive).
        name: how errors name this optimizee.
    """

    def __init__(self, model: nn.Module, loss_fn: LossFn, batch_size: int | None, expects: tuple[int, ...], name: str) -> None:
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1 (or None for all examples), got {batch_size}")
        self.model, self.loss_fn, self.batch_size, self.expects, self.name = model, loss_fn, batch_size, expects, name

    def check(self, problems: Task) -> None:
        """``ValueError`` naming the fix when ``problems`` are not of this optimizee's family."""
        if tuple(problems.support_x.shape[2:]) != self.expects or problems.query_x.dtype != torch.int64:
            raise ValueError(f"optimizee {self.name!r} trains on problems with examples of shape {self.expects} and int64 seeds; "
                             f"got support_x {tuple(problems.support_x.shape)}, query_x {problems.query_x.dtype}: "
                             f"pair it with its own problem family ([data] dataset)")

    def initial_params(self, problems: Task) -> Params:
        """Each problem's initial parameters ``{name: (B, *shape)}``: the model's own ``reset_parameters``
        (PyTorch's default initialisation) seeded by the problem's seed; global RNG state untouched."""
        self.check(problems)
        template = copy.deepcopy(self.model)
        drawn = []
        with torch.random.fork_rng(devices=[]):
            for seed in problems.query_x[:, 0].tolist():
                torch.manual_seed(seed)
                for module in template.modules():
                    if hasattr(module, "reset_parameters"):
                        module.reset_parameters()
                drawn.append({k: p.detach().clone() for k, p in template.named_parameters()})
        dtype = problems.support_x.dtype
        return {k: torch.stack([d[k] for d in drawn]).to(dtype) for k in drawn[0]}

    def batch_order(self, problems: Task, steps: int) -> Tensor | None:
        """Example indices ``(B, steps, batch_size)`` of each step's mini-batch, or ``None`` (full batches)."""
        if self.batch_size is None:
            return None
        n = problems.support_x.shape[1]
        return torch.stack([minibatch_order(n, self.batch_size, steps, torch.Generator().manual_seed(seed ^ ORDER_SALT))
                            for seed in problems.query_x[:, 0].tolist()])

    def batch(self, problems: Task, order: Tensor | None, step: int) -> tuple[Tensor, Tensor]:
        """Inputs ``(B, b, ...)`` and targets ``(B, b, ...)`` of step ``step``."""
        if order is None:
            return problems.support_x, problems.support_y
        rows = order[:, step]  # (B, b)
        problem = torch.arange(rows.shape[0]).unsqueeze(1)  # (B, 1)
        return problems.support_x[problem, rows], problems.support_y[problem, rows]

    def losses(self, params: Params, x: Tensor, y: Tensor) -> Tensor:
        """Each problem's loss ``(B,)`` of its parameters ``{name: (B, *shape)}`` on its batch ``x``, ``y``."""

        def one(p: Params, xi: Tensor, yi: Tensor) -> Tensor:
            return self.loss_fn(functional_call(self.model, p, (xi,)), yi)

        return vmap(one)(params, x, y)
