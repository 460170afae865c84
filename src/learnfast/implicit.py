"""Implicit meta-gradients (iMAML): conjugate gradient on the proximal inner problem.

Rajeswaran, Finn, Kakade & Levine (2019). Meta-Learning with Implicit Gradients. NeurIPS.

The inner loop minimises ``L_support(phi) + lam/2 ||phi - theta||^2``. At its minimiser
``phi*(theta)`` the implicit function theorem gives ``d phi*/d theta = (I + H/lam)^{-1}`` with
``H`` the Hessian of the support loss at ``phi*``, so the meta-gradient of a query loss with
gradient ``g`` at ``phi*`` is ``(I + H/lam)^{-1} g``: a linear solve by conjugate gradient with
Hessian-vector products, independent of how ``phi*`` was reached. The inner loop therefore keeps
no graph, and memory does not grow with the number of inner steps.

``implicit_solution`` wraps a converged ``phi`` in an ``autograd.Function`` whose backward does
that solve, so any loss computed from the returned parameters backpropagates the implicit
gradient into ``theta``. It runs eagerly and under ``torch.func.vmap(grad(...))``.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch
from torch import Tensor, nn
from torch.func import grad

from ._types import LossFn, Params
from .functional import dot, forward_with


class Implicit(NamedTuple):
    """Options of ``memory="implicit"``.

    Args:
        lam: strength of the proximal term ``lam/2 ||phi - theta||^2`` (iMAML's lambda); larger
            keeps ``phi`` closer to ``theta`` and makes the solve better conditioned.
        cg_steps: conjugate-gradient iterations (a fixed count, so it runs under ``vmap``).
        damping: solves ``((1 + damping) I + H/lam) v = g``; a little damping keeps CG stable where
            the support Hessian has negative curvature (``H/lam`` below ``-1``).
    """

    lam: float = 1.0
    cg_steps: int = 5
    damping: float = 0.0


def check_implicit(options: Implicit) -> Implicit:
    """``options`` validated, with the fix in the message."""
    if not options.lam > 0:
        raise ValueError(f"implicit_lambda must be > 0 (the proximal strength of iMAML), got {options.lam}")
    if options.cg_steps < 1:
        raise ValueError(f"cg_steps must be >= 1, got {options.cg_steps}")
    if options.damping < 0:
        raise ValueError(f"cg_damping must be >= 0, got {options.damping}")
    return options


def proximal(fast: Params, theta: Params, lam: float) -> Tensor:
    """``lam/2 ||fast - theta||^2`` summed over the keys of ``fast``."""
    return 0.5 * lam * sum(((fast[k] - theta[k]) ** 2).sum() for k in fast)


def conjugate_gradient(matvec: Callable[[Params], Params], b: Params, steps: int) -> Params:
    """Approximately solves ``A x = b`` for a symmetric positive-definite ``A`` given as ``matvec``.

    Runs exactly ``steps`` iterations from ``x = 0`` (no data-dependent stopping, so it runs under
    ``vmap``); on an ``n``-dimensional problem ``n`` steps are exact up to rounding. A residual that
    reaches zero stays there (divisions are guarded) instead of producing NaN.

    Args:
        matvec: ``v -> A v`` on parameter dicts.
        b: right-hand side, a parameter dict.
        steps: iterations.

    Returns:
        ``x``, keyed like ``b``.
    """
    x = {k: torch.zeros_like(v) for k, v in b.items()}
    residual, direction = dict(b), dict(b)
    rr = dot(residual, residual)
    for _ in range(steps):
        a_direction = matvec(direction)
        alpha = _ratio(rr, dot(direction, a_direction))
        x = {k: x[k] + alpha * direction[k] for k in x}
        residual = {k: residual[k] - alpha * a_direction[k] for k in residual}
        rr_next = dot(residual, residual)
        beta = _ratio(rr_next, rr)
        direction = {k: residual[k] + beta * direction[k] for k in direction}
        rr = rr_next
    return x


def _ratio(num: Tensor, den: Tensor) -> Tensor:
    """``num / den``, and 0 where ``den`` is 0 (a converged CG has ``num = den = 0``)."""
    zero = den == 0
    return torch.where(zero, torch.zeros_like(num), num / torch.where(zero, torch.ones_like(den), den))


class Problem(NamedTuple):
    """What the backward pass needs to rebuild the support loss (no tensors: those are saved)."""

    model: nn.Module
    loss_fn: LossFn
    fast_keys: tuple[str, ...]
    frozen_keys: tuple[str, ...]
    options: Implicit


class _ImplicitSolution(torch.autograd.Function):
    """``phi`` forward; ``(I + H/lam)^{-1} g`` to ``theta`` and the cross term to the frozen parameters backward.

    Inputs: ``problem, support_x, support_y, *theta, *frozen, *phi`` (``theta`` and ``phi`` keyed by
    ``problem.fast_keys``, ``frozen`` by ``problem.frozen_keys``). Outputs: a copy of ``phi``.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(problem: Problem, support_x: Tensor, support_y: Tensor, *tensors: Tensor) -> tuple[Tensor, ...]:
        return tuple(p.clone() for p in tensors[-len(problem.fast_keys):])

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        problem, support_x, support_y, *tensors = inputs
        n = len(problem.fast_keys)
        ctx.problem = problem
        ctx.save_for_backward(support_x, support_y, *tensors[n:])  # frozen, phi

    @staticmethod
    def backward(ctx, *grad_phi: Tensor):
        problem: Problem = ctx.problem
        support_x, support_y, *saved = ctx.saved_tensors
        m = len(problem.frozen_keys)
        frozen, phi = dict(zip(problem.frozen_keys, saved[:m])), dict(zip(problem.fast_keys, saved[m:]))

        def support_loss(fast: Params, fixed: Params) -> Tensor:
            return problem.loss_fn(forward_with(problem.model, {**fixed, **fast}, support_x), support_y)

        def a_times(v: Params) -> Params:  # ((1 + damping) I + H/lam) v, H v by double backward at phi
            h_v = grad(lambda fast: dot(grad(support_loss)(fast, frozen), v))(phi)
            return {k: (1.0 + problem.options.damping) * v[k] + h_v[k] / problem.options.lam for k in v}

        v = conjugate_gradient(a_times, dict(zip(problem.fast_keys, grad_phi)), problem.options.cg_steps)
        grad_frozen: Params = {}
        if frozen:
            # d phi*/d w = -(H + lam I)^{-1} d^2 L / d phi d w, so w receives -(1/lam) d/dw <grad_phi L, v>
            cross = grad(lambda fixed: dot(grad(support_loss)(phi, fixed), v))(frozen)
            grad_frozen = {k: -cross[k] / problem.options.lam for k in frozen}
        return (
            None, None, None,
            *(v[k] for k in problem.fast_keys),
            *(grad_frozen[k] for k in problem.frozen_keys),
            *(None for _ in problem.fast_keys),
        )


def implicit_solution(
    model: nn.Module,
    loss_fn: LossFn,
    support_x: Tensor,
    support_y: Tensor,
    theta: Params,
    frozen: Params,
    phi: Params,
    options: Implicit,
) -> Params:
    """``phi`` (values unchanged) carrying the implicit meta-gradient back to ``theta`` and ``frozen``.

    Args:
        model: the network (structure only).
        loss_fn: the support loss, ``loss_fn(model_output, support_y) -> scalar``.
        support_x: ``(S, ...)`` support inputs; support_y: ``(S, ...)`` targets.
        theta: the meta-parameters that adapt (the proximal centre), with their graph.
        frozen: the meta-parameters that do not adapt but shape the support loss, with their graph.
        phi: the (approximate) minimiser of ``L_support + lam/2 ||phi - theta||^2``, keyed like
            ``theta``; its graph, if any, is ignored.
        options: ``lam``, ``cg_steps``, ``damping``.

    Returns:
        ``Params`` keyed like ``theta``: ``phi``'s values; backward sends ``(I + H/lam)^{-1} g`` to
        ``theta`` and ``-(1/lam) d^2 L/(dw dphi) (I + H/lam)^{-1} g`` to ``frozen``.
    """
    problem = Problem(model, loss_fn, tuple(theta), tuple(frozen), options)
    out = _ImplicitSolution.apply(
        problem, support_x, support_y,
        *theta.values(), *frozen.values(), *(phi[k].detach() for k in theta),
    )
    return dict(zip(problem.fast_keys, out))
