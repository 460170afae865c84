"""Hand-designed update rules the learned optimizer is compared with, and their honest tuning.

SGD and Adam are ``learnfast.inner``'s rules; SGD with Nesterov momentum and RMSprop are added here
in the same ``(init, update)`` form, each equal to its ``torch.optim`` namesake. Each rule's
learning rate is chosen per problem family on a log grid by the mean final loss over *training*
problems (as Andrychowicz et al. 2016 tune theirs), never on the held-out problems it is scored on.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from .._types import Params
from ..inner import InnerOptimizer, State, adam, sgd
from ..tasks import Task
from .problems import Optimizee
from .unroll import run

LR_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0, 3.0, 10.0, 30.0)


def nesterov(lr: float, momentum: float = 0.9) -> InnerOptimizer:
    """SGD with Nesterov momentum as ``torch.optim.SGD(lr, momentum, nesterov=True)``; state: the velocity dict."""

    def update(grads: Params, state: State, params: Params, step: int) -> tuple[Params, State]:
        velocity = {k: momentum * state[k] + grads[k] for k in params}
        return {k: p - lr * (grads[k] + momentum * velocity[k]) for k, p in params.items()}, velocity

    return InnerOptimizer(lambda params: {k: torch.zeros_like(p) for k, p in params.items()}, update)


def rmsprop(lr: float, alpha: float = 0.99, eps: float = 1e-8) -> InnerOptimizer:
    """RMSprop as ``torch.optim.RMSprop(lr, alpha, eps)``; state: the running mean of squared gradients."""

    def update(grads: Params, state: State, params: Params, step: int) -> tuple[Params, State]:
        square = {k: alpha * state[k] + (1 - alpha) * grads[k] * grads[k] for k in params}
        return {k: p - lr * grads[k] / (square[k].sqrt() + eps) for k, p in params.items()}, square

    return InnerOptimizer(lambda params: {k: torch.zeros_like(p) for k, p in params.items()}, update)


BASELINES: dict[str, Callable[[float], InnerOptimizer]] = {"SGD": sgd, "SGD+Nesterov": nesterov, "RMSprop": rmsprop, "Adam": adam}
"""Display name -> ``rule(lr)``; the other hyper-parameters are ``torch.optim``'s defaults (momentum 0.9)."""


def tune_lr(optimizee: Optimizee, problems: Task, rule: Callable[[float], InnerOptimizer], steps: int,
            grid: tuple[float, ...] = LR_GRID) -> tuple[float, dict[float, float]]:
    """The grid rate with the lowest mean final loss after ``steps`` steps on ``problems`` (training problems).

    Returns ``(best_lr, {lr: mean final loss})``; a rate whose runs diverge scores ``inf``.
    """
    scores = {}
    for lr in grid:
        final = run(optimizee, problems, rule(lr), steps, record=False)[-1]
        scores[lr] = final.mean().item() if bool(torch.isfinite(final).all()) else math.inf
    best = min(scores, key=scores.get)
    if not math.isfinite(scores[best]):
        raise FloatingPointError(f"every learning rate of the grid {grid} diverged within {steps} steps; widen the grid")
    if best in (grid[0], grid[-1]):
        raise ValueError(f"the best learning rate {best:g} lies on the edge of the grid {grid}; widen the grid")
    return best, scores
