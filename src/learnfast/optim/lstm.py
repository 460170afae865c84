"""The coordinate-wise LSTM optimizer of "Learning to learn by gradient descent by gradient descent".

Andrychowicz, Denil, Gómez, Hoffman, Pfau, Schaul, Shillingford & de Freitas (2016). NeurIPS.

One small two-layer LSTM (20 units) is applied to every coordinate of the optimizee separately,
with its weights shared across coordinates and its own hidden state per coordinate: the input is
the coordinate's gradient, preprocessed to ``(log|g| / p, sign g)`` (p = 10; appendix A), the
output, times 0.1, is the coordinate's update. Because nothing mixes coordinates, one network
optimizes any number of parameters, and permuting the coordinates permutes the updates.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from .._types import Params
from ..functional import preprocess_gradient
from ..inner import InnerOptimizer

HIDDEN, LAYERS, P, OUTPUT_SCALE = 20, 2, 10.0, 0.1  # the paper's settings


class LSTMState(NamedTuple):
    """Per-coordinate LSTM state: ``hidden`` and ``cell``, each ``(layers, N, hidden)``."""

    hidden: Tensor
    cell: Tensor


class LSTMOptimizer(nn.Module):
    """Maps gradients ``(N,)`` and a state to updates ``(N,)`` and the next state, coordinate by coordinate.

    Args:
        hidden: units per LSTM layer (20 in the paper).
        layers: LSTM layers (2 in the paper).
        p: preprocessing constant (10): magnitudes below ``e^-p`` are passed on linearly.
        output_scale: the update is this times the output layer (0.1 in the paper).

    Example:
        >>> net = LSTMOptimizer()
        >>> update, state = net(torch.randn(7), net.initial_state(7, torch.zeros(())))
        >>> update.shape, state.hidden.shape
        (torch.Size([7]), torch.Size([2, 7, 20]))

    References:
        Andrychowicz et al. (2016), https://arxiv.org/abs/1606.04474
    """

    def __init__(self, hidden: int = HIDDEN, layers: int = LAYERS, p: float = P, output_scale: float = OUTPUT_SCALE) -> None:
        super().__init__()
        if hidden < 1 or layers < 1 or p <= 0 or output_scale <= 0:
            raise ValueError(f"LSTMOptimizer needs hidden >= 1, layers >= 1, p > 0 and output_scale > 0; got "
                             f"hidden={hidden}, layers={layers}, p={p}, output_scale={output_scale}")
        self.hidden, self.p, self.output_scale = hidden, p, output_scale
        self.cells = nn.ModuleList([nn.LSTMCell(2 if i == 0 else hidden, hidden) for i in range(layers)])
        self.head = nn.Linear(hidden, 1)

    def initial_state(self, coordinates: int, like: Tensor) -> LSTMState:
        """Zero state for ``coordinates`` coordinates, with ``like``'s dtype and device."""
        zeros = like.new_zeros(len(self.cells), coordinates, self.hidden)
        return LSTMState(zeros, zeros)

    def forward(self, grads: Tensor, state: LSTMState) -> tuple[Tensor, LSTMState]:
        """``grads (N,)`` (any shape is flattened), ``state`` of N coordinates -> ``updates (N,)``, next state."""
        h, state = self.recur(preprocess_gradient(grads.reshape(-1), self.p), state)  # inputs (N, 2)
        return self.output_scale * self.head(h).squeeze(-1), state

    def recur(self, x: Tensor, state: LSTMState) -> tuple[Tensor, LSTMState]:
        """The stacked LSTM cells on inputs ``x (N, features)``: the last layer's output ``(N, hidden)``, next state."""
        hidden, cell = [], []
        for layer, lstm in enumerate(self.cells):
            h, c = lstm(x, (state.hidden[layer], state.cell[layer]))  # (N, hidden) each
            hidden.append(h)
            cell.append(c)
            x = h
        return x, LSTMState(torch.stack(hidden), torch.stack(cell))


def learned_rule(network: LSTMOptimizer) -> InnerOptimizer:
    """The LSTM optimizer as an ``(init, update)`` rule of ``learnfast.inner``: ``theta + network(grad)``.

    All parameters of the dict (any leading batch dimensions included) go through the network as
    one vector of coordinates; the state is the network's (:class:`LSTMState`, or the momentum
    LSTM's) over that vector. Usable by ``learnfast.adapt`` as the inner loop of a MAML-style method.

    Example:
        >>> rule = learned_rule(LSTMOptimizer())
        >>> params = {"w": torch.zeros(3, 2), "b": torch.zeros(2)}
        >>> new, state = rule.update({"w": torch.ones(3, 2), "b": torch.ones(2)}, rule.init(params), params, 0)
        >>> new["w"].shape, state.cell.shape
        (torch.Size([3, 2]), torch.Size([2, 8, 20]))
    """

    def init(params: Params) -> LSTMState:
        return network.initial_state(sum(p.numel() for p in params.values()), next(iter(params.values())))

    def update(grads: Params, state: LSTMState, params: Params, step: int) -> tuple[Params, LSTMState]:
        updates, state = network(torch.cat([grads[k].reshape(-1) for k in params]), state)
        pieces = updates.split([p.numel() for p in params.values()])
        return {k: p + d.view_as(p) for (k, p), d in zip(params.items(), pieces)}, state

    return InnerOptimizer(init, update)
