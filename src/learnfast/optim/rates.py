"""The learned-scalar baseline: one learned SGD rate per coordinate (the Meta-SGD idea, Li et al. 2017).

Meta-trained exactly as the LSTM optimizer is (same problems, truncations and outer optimizer), it
shows how much of the LSTM's gain a per-coordinate step size alone already gives. The rates are
stored as logarithms, so they stay positive.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .._types import Params
from ..functional import Mirror, sgd_step
from ..inner import InnerOptimizer, State


class CoordinateRates(Mirror):
    """``log`` of a rate per coordinate of ``model``'s parameters, named and shaped like them.

    Example:
        >>> rates = CoordinateRates(torch.nn.Linear(3, 2), initial_rate=0.1)
        >>> rates.rule().update({"weight": torch.ones(2, 3), "bias": torch.ones(2)}, (), {"weight": torch.zeros(2, 3), "bias": torch.zeros(2)}, 0)[0]["bias"]
        tensor([-0.1000, -0.1000], grad_fn=<SubBackward0>)
    """

    def __init__(self, model: nn.Module, initial_rate: float) -> None:
        if not initial_rate > 0:
            raise ValueError(f"initial_rate must be > 0, got {initial_rate}")
        super().__init__({name: torch.full_like(p, math.log(initial_rate)) for name, p in model.named_parameters()})

    def rule(self) -> InnerOptimizer:
        """SGD with these rates, ``theta - exp(log_rate) * grad`` (rates broadcast over leading problem dimensions).

        The rates are exponentiated inside every step, so each truncation of a run has its own graph to them.
        """
        log_rates = self.as_dict()

        def update(grads: Params, state: State, params: Params, step: int) -> tuple[Params, State]:
            return sgd_step(params, grads, {k: v.exp() for k, v in log_rates.items()}), state

        return InnerOptimizer(lambda params: (), update)
