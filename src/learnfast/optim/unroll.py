"""Running an update rule on a batch of problems, and the truncated-BPTT meta-gradient of a learned one.

``run`` optimizes each problem for ``steps`` steps with any ``(init, update)`` rule and records the
loss on each problem's whole objective; nothing is differentiated through it.

``meta_gradient`` is the training signal of Andrychowicz et al. (2016): the meta-loss is the mean
over problems and steps of the optimizee's loss ``f(theta_t)``, ``t = 1..steps`` (the paper's
weights ``w_t = 1``), back-propagated through the unrolled optimization in truncations of
``unroll`` steps: parameters and rule state are detached between truncations, and each truncation's
meta-gradient runs through its own steps only. The optimizee's gradients are inputs to the rule
and are treated as constants (the paper drops the second-order terms) unless ``second_order``.
``objective="final"`` replaces the paper's meta-loss by the score itself, each problem's loss on all
its examples at ``theta_steps``, back-propagated through the whole run (one truncation).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor
from torch.utils._pytree import tree_map

from .._types import Params
from ..functional import detach
from ..inner import InnerOptimizer, State
from ..tasks import Task
from .problems import Optimizee


def _losses_and_grads(optimizee: Optimizee, params: Params, x: Tensor, y: Tensor, create_graph: bool) -> tuple[Tensor, Params]:
    """Losses ``(B,)`` and their gradients w.r.t. each problem's parameters (problems are independent, so one
    backward of the sum gives every problem its own gradient)."""
    losses = optimizee.losses(params, x, y)
    grads = torch.autograd.grad(losses.sum(), list(params.values()), create_graph=create_graph, retain_graph=True)
    return losses, dict(zip(params, grads))


def _leaves(params: Params) -> Params:
    return {k: v.detach().requires_grad_() for k, v in params.items()}


def _step_without_graph(optimizee: Optimizee, problems: Task, order: Tensor | None, rule: InnerOptimizer, params: Params,
                        state: State, step: int) -> tuple[Params, State]:
    """One step of ``rule`` whose result carries no graph (the optimizee's gradient still needs one, locally)."""
    with torch.enable_grad():
        _, grads = _losses_and_grads(optimizee, _leaves(params), *optimizee.batch(problems, order, step), create_graph=False)
    with torch.no_grad():
        return rule.update(grads, state, params, step)


def run(optimizee: Optimizee, problems: Task, rule: InnerOptimizer, steps: int, record: bool = True) -> Tensor:
    """Optimizes every problem for ``steps`` steps; each problem's loss on all its examples ``(steps + 1, B)``
    at ``theta_0 .. theta_steps`` (``record=False``: only the last row is computed, ``(1, B)``). No graph is kept."""
    params = optimizee.initial_params(problems)
    order = optimizee.batch_order(problems, steps)
    with torch.no_grad():
        state = rule.init(params)
    recorded = []
    for step in range(steps + 1):
        if record or step == steps:
            with torch.no_grad():
                recorded.append(optimizee.losses(params, problems.support_x, problems.support_y))
        if step < steps:
            params, state = _step_without_graph(optimizee, problems, order, rule, params, state, step)
    return torch.stack(recorded)


class MetaGradient(NamedTuple):
    """``grads``: d meta-loss / d meta-parameters (summed over truncations); ``loss``: the meta-loss value (mean
    mini-batch loss over problems and steps 1..T); ``final``: each problem's mini-batch loss at ``theta_T`` ``(B,)``."""

    grads: Params
    loss: Tensor
    final: Tensor


OBJECTIVES = ("mean", "final")


def meta_gradient(optimizee: Optimizee, problems: Task, rule: InnerOptimizer, meta_params: Params, steps: int,
                  unroll: int, second_order: bool = False, only: int | None = None, objective: str = "mean") -> MetaGradient:
    """Truncated back-propagation through ``steps`` steps of ``rule`` (module docstring).

    Args:
        optimizee: the network and objective of the problems.
        problems: a batch of ``B`` problems (:mod:`learnfast.optim.problems`).
        rule: the learned rule, built from ``meta_params``.
        meta_params: the tensors whose meta-gradient is returned.
        steps: optimizee steps in the run (the paper: 100).
        unroll: steps per truncation (the paper: 20).
        second_order: keep the optimizee's gradients in the graph (their Hessian terms).
        only: back-propagate truncation ``only`` (0-based) alone: the steps before it run without a
            graph, the run stops after it; the value is then the mean loss over its steps.
        objective: ``"mean"`` (the paper's meta-loss) or ``"final"`` (the loss on all examples at
            ``theta_steps``; the value and ``final`` are then that loss; needs ``unroll >= steps``).
    """
    if steps < 1 or unroll < 1:
        raise ValueError(f"steps and unroll must be >= 1, got steps={steps}, unroll={unroll}")
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; choose one of {OBJECTIVES}")
    if objective == "final" and unroll < steps:
        raise ValueError(f'objective="final" back-propagates the whole run: unroll={unroll} must be >= steps={steps} '
                         "(earlier truncations would get no meta-gradient)")
    params = optimizee.initial_params(problems)
    order = optimizee.batch_order(problems, steps + 1)
    state = rule.init(params)
    total = {k: torch.zeros_like(v) for k, v in meta_params.items()}
    value = torch.zeros((), dtype=params[next(iter(params))].dtype)
    starts = range(0, steps, unroll)
    if only is not None and not 0 <= only < len(starts):
        raise ValueError(f"only={only}: a run of {steps} steps has truncations 0..{len(starts) - 1} of {unroll} steps")
    for index, start in enumerate(starts):
        stop = min(start + unroll, steps)
        if only is not None and index != only:
            if index > only:
                break
            for step in range(start, stop):
                params, state = _step_without_graph(optimizee, problems, order, rule, params, state, step)
            continue
        params, state = _leaves(params), tree_map(lambda t: t.detach() if isinstance(t, Tensor) else t, state)
        truncation = 0.0
        for step in range(start, stop):
            losses, grads = _losses_and_grads(optimizee, params, *optimizee.batch(problems, order, step), create_graph=second_order)
            if step > start and objective == "mean":  # theta_start is detached: its loss has no meta-gradient (and was counted before)
                truncation = truncation + losses.mean()
            params, state = rule.update(grads, state, params, step)
        if objective == "final":
            final = optimizee.losses(params, problems.support_x, problems.support_y)
            truncation = final.mean()
        else:
            final = optimizee.losses(params, *optimizee.batch(problems, order, stop))
            truncation = (truncation + final.mean()) / (steps if only is None else stop - start)
        grads = torch.autograd.grad(truncation, list(meta_params.values()), allow_unused=True)
        for k, g in zip(meta_params, grads):
            if g is not None:
                total[k] += g
        value = value + truncation.detach()
    return MetaGradient(total, value, final.detach())
