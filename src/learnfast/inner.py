"""``adapt``: the one differentiable inner loop shared by every gradient-based algorithm.

MAML, first-order MAML, ANIL, Meta-SGD and meta-transfer learning differ only in the update rule,
which parameters adapt, and whether second-order terms are kept. The loop is written with
``torch.func.grad`` so it runs unchanged eagerly (meta-gradients flow to the caller's autograd
graph) and under ``torch.func.vmap`` over tasks.
"""
from __future__ import annotations

from typing import Callable, Iterable

from torch import Tensor, nn
from torch.func import grad

from ._types import LossFn, Params
from .functional import detach, forward_with, sgd_step

UpdateRule = Callable[[Params, Params, int], Params]
"""``update(params, grads, step) -> new params``; pure, never in place."""


def sgd(lr: float | Params) -> UpdateRule:
    """Plain gradient descent; ``lr`` is a scalar or a per-parameter dict of (learnable) rates."""

    def update(params: Params, grads: Params, step: int) -> Params:
        return sgd_step(params, grads, lr)

    return update


def adapt(
    model: nn.Module,
    params: Params,
    support_x: Tensor,
    support_y: Tensor,
    loss_fn: LossFn,
    steps: int,
    update: UpdateRule,
    adapt_keys: Iterable[str] | None = None,
    first_order: bool = False,
) -> Params:
    """Takes ``steps`` gradient steps on the support loss and returns the adapted parameters.

    Args:
        model: the network; only its structure is used, weights come from ``params``.
        params: starting parameters (the meta-parameters), keyed like ``named_parameters()``.
        support_x: ``(S, ...)`` support inputs of one task.
        support_y: ``(S, ...)`` support targets.
        loss_fn: ``loss_fn(model_output, support_y) -> scalar``.
        steps: number of inner steps (0 returns ``params`` unchanged).
        update: the update rule, e.g. ``sgd(0.4)``.
        adapt_keys: names of the parameters that adapt (default: all); the rest stay fixed.
        first_order: drop second-order terms (gradients are treated as constants).

    Returns:
        ``Params``: all parameters, the adapted ones replaced; differentiable w.r.t. ``params``
        unless ``first_order``.
    """
    keys = list(params) if adapt_keys is None else list(adapt_keys)
    unknown = [k for k in keys if k not in params]
    if unknown:
        raise KeyError(f"adapt_keys {unknown} are not parameters of the model; known: {list(params)[:8]}...")
    fast = {k: params[k] for k in keys}
    frozen = {k: v for k, v in params.items() if k not in fast}

    def support_loss(fast_params: Params) -> Tensor:
        return loss_fn(forward_with(model, {**frozen, **fast_params}, support_x), support_y)

    for step in range(steps):
        grads = grad(support_loss)(fast)
        if first_order:
            grads = detach(grads)
        fast = update(fast, grads, step)
    return {**frozen, **fast}
