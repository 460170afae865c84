"""An LSTM that sets each coordinate's step size on top of Nesterov momentum (``rule = "momentum-lstm"``).

The paper's LSTM (:mod:`learnfast.optim.lstm`) must produce the whole update from the log-magnitude
and sign of the gradient. On problems whose best hand-designed rule takes steps proportional to the
gradient (the sigmoid MLP, where tuned Nesterov momentum wins), that linear-in-the-gradient map is
hard to learn. Here the LSTM, shared across coordinates as in the paper, only modulates a
hand-designed direction, in the way Wichrowska et al. (2017, "Learned optimizers that scale and
generalize") let their RNN output a log step size:

    v_t = mu v_{t-1} + g_t
    theta_{t+1} = theta_t - exp(log_rate + a_t) (g_t + mu v_t)        a_t = head(LSTM(pre(g_t), pre(v_t)))

``pre`` is the paper's ``(log|x| / p, sign x)`` preprocessing; ``log_rate`` and ``mu`` are learned
scalars started at a tuned rate and 0.9, and the head starts at zero, so before meta-training the
rule is exactly ``torch.optim.SGD(lr, momentum=0.9, nesterov=True)``.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor, nn

from ..functional import preprocess_gradient
from .lstm import HIDDEN, LAYERS, P, LSTMOptimizer, LSTMState

MOMENTUM = 0.9  # torch.optim.SGD's customary value, the tuned baseline's


class MomentumLSTMState(NamedTuple):
    """Per-coordinate state: the LSTM's ``hidden`` and ``cell`` ``(layers, N, hidden)`` and the ``velocity`` ``(N, 1)``.

    Every field has the coordinates on dimension -2, as :class:`LSTMState`'s."""

    hidden: Tensor
    cell: Tensor
    velocity: Tensor


class MomentumLSTM(LSTMOptimizer):
    """Maps gradients ``(N,)`` and a state to updates ``(N,)`` and the next state, coordinate by coordinate.

    Args:
        initial_rate: the step size before meta-training (the tuned Nesterov rate of the problem family).
        hidden, layers, p: as for :class:`LSTMOptimizer`.

    Example:
        >>> net = MomentumLSTM(initial_rate=0.5)
        >>> update, state = net(torch.ones(3), net.initial_state(3, torch.zeros(())))
        >>> update                                   # before meta-training: Nesterov, -0.5 * (1 + 0.9 * 1)
        tensor([-0.9500, -0.9500, -0.9500], grad_fn=<MulBackward0>)

    References:
        Andrychowicz et al. (2016), https://arxiv.org/abs/1606.04474; Wichrowska et al. (2017),
        https://arxiv.org/abs/1703.04813
    """

    def __init__(self, initial_rate: float, hidden: int = HIDDEN, layers: int = LAYERS, p: float = P) -> None:
        if not initial_rate > 0:
            raise ValueError(f"initial_rate must be > 0, got {initial_rate}")
        super().__init__(hidden, layers, p, output_scale=1.0)
        self.cells[0] = nn.LSTMCell(4, hidden)  # inputs: the preprocessed gradient and velocity
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.log_rate = nn.Parameter(torch.tensor(math.log(initial_rate)))
        self.momentum_logit = nn.Parameter(torch.tensor(math.log(MOMENTUM / (1 - MOMENTUM))))

    def initial_state(self, coordinates: int, like: Tensor) -> MomentumLSTMState:
        """Zero state for ``coordinates`` coordinates, with ``like``'s dtype and device."""
        lstm = super().initial_state(coordinates, like)
        return MomentumLSTMState(lstm.hidden, lstm.cell, like.new_zeros(coordinates, 1))

    def forward(self, grads: Tensor, state: MomentumLSTMState) -> tuple[Tensor, MomentumLSTMState]:
        """``grads (N,)`` (any shape is flattened), ``state`` of N coordinates -> ``updates (N,)``, next state."""
        g = grads.reshape(-1)
        mu = torch.sigmoid(self.momentum_logit)
        velocity = mu * state.velocity.squeeze(-1) + g
        x = torch.cat([preprocess_gradient(g, self.p), preprocess_gradient(velocity, self.p)], dim=-1)  # (N, 4)
        h, lstm = self.recur(x, LSTMState(state.hidden, state.cell))
        rate = torch.exp(self.log_rate + self.head(h).squeeze(-1))
        return -rate * (g + mu * velocity), MomentumLSTMState(lstm.hidden, lstm.cell, velocity.unsqueeze(-1))
