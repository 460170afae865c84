"""``LearnedOptimizer``: a trained LSTM optimizer as an ordinary ``torch.optim.Optimizer``.

>>> model = torch.nn.Linear(4, 1)
>>> opt = LearnedOptimizer(model.parameters(), LSTMOptimizer())     # or a checkpoint path: "zoo/l2o-mlp.safetensors"
>>> model(torch.randn(8, 4)).pow(2).mean().backward()
>>> opt.step(); opt.zero_grad()
"""
from __future__ import annotations

import os
from typing import Any, Callable, Iterable

import torch
from torch import Tensor

from .checkpoint import load_lstm_optimizer
from .lstm import LSTMOptimizer


class LearnedOptimizer(torch.optim.Optimizer):
    """Updates each parameter by a trained coordinate-wise LSTM: ``p += scale * lstm(grad)``.

    Every coordinate keeps its own LSTM state (``state[p]["hidden"]``, ``state[p]["cell"]``,
    ``(layers, p.numel(), units)``, and for a ``momentum-lstm`` rule its ``velocity``), so
    ``state_dict`` / ``load_state_dict`` resume a run exactly.
    All parameters with a gradient go through the network in one call per step.

    Args:
        params: parameters or parameter groups, as for any ``torch.optim`` optimizer.
        checkpoint: a learned-optimizer checkpoint (``zoo/l2o-quadratic.safetensors``,
            ``zoo/l2o-mlp.safetensors``, a run's ``best.safetensors``) or an :class:`LSTMOptimizer`
            (:class:`MomentumLSTM` included).
        scale: multiplies the learned update (a group option; 1 is the rule as trained).

    Raises:
        ValueError: the checkpoint is not an LSTM optimizer's.
        FloatingPointError: a gradient holds NaN or inf (nothing is changed).

    References:
        Andrychowicz et al. (2016), https://arxiv.org/abs/1606.04474
    """

    def __init__(self, params: Iterable[Tensor] | Iterable[dict[str, Any]], checkpoint: str | os.PathLike | LSTMOptimizer,
                 scale: float = 1.0) -> None:
        if not scale >= 0:
            raise ValueError(f"scale must be >= 0, got {scale}")
        super().__init__(params, {"scale": scale})
        network = checkpoint if isinstance(checkpoint, LSTMOptimizer) else load_lstm_optimizer(checkpoint)
        self.network = network.eval().requires_grad_(False)

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        """One learned update of every parameter that has a gradient; returns ``closure()``'s loss if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        entries = [(p, group["scale"]) for group in self.param_groups for p in group["params"] if p.grad is not None]
        if not entries:
            return loss
        for i, (p, _) in enumerate(entries):
            if not bool(torch.isfinite(p.grad).all()):
                raise FloatingPointError(f"LearnedOptimizer.step: the gradient of a parameter of shape {tuple(p.shape)} holds NaN "
                                         f"or inf; no parameter was changed. Check the loss (or lower scale) before stepping")
            if p.grad.is_sparse:
                raise ValueError("LearnedOptimizer does not take sparse gradients")
        network = self.network.to(device=entries[0][0].device, dtype=entries[0][0].dtype)
        states = []
        for p, _ in entries:
            state = self.state[p]
            if not state:
                state.update(step=0, **network.initial_state(p.numel(), p)._asdict())
            states.append(state)
        kind = type(network.initial_state(0, entries[0][0]))  # a NamedTuple; every field has the coordinates on dim -2
        joint = kind(*(torch.cat([s[f] for s in states], -2) for f in kind._fields))
        updates, new = network(torch.cat([p.grad.reshape(-1) for p, _ in entries]), joint)
        sizes = [p.numel() for p, _ in entries]
        pieces = [t.split(sizes, -2) for t in new]
        for i, ((p, scale), state, update) in enumerate(zip(entries, states, updates.split(sizes))):
            p.add_(update.view_as(p), alpha=scale)
            state.update(step=state["step"] + 1, **{f: piece[i].clone() for f, piece in zip(kind._fields, pieces)})
        return loss
