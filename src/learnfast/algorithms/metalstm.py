"""Meta-LSTM: an LSTM meta-learner whose cell state is the learner's parameters.

Ravi & Larochelle (2017). Optimization as a Model for Few-Shot Learning. ICLR.

The learner (any backbone with a ``ways``-unit head) is trained on a task's support set by a
coordinate-wise LSTM instead of gradient descent. Its cell state is the parameter vector, ``c_0``
the meta-learned initialisation, and its update ``c_t = f_t * c_{t-1} - i_t * g_t`` is a gradient
step whose rate ``i_t`` and decay ``f_t`` are gates computed per coordinate from the preprocessed
gradient and loss (through a first LSTM layer) and the gates' previous values. The query loss of the
adapted learner trains the meta-learner and ``c_0``; the gradient and loss inputs are constants to
the meta-gradient, as in the paper (``memory="first-order"`` of the shared inner loop).
"""
from __future__ import annotations

import contextlib
import functools
import os
import shutil
import sys
import threading
import warnings

import torch
from torch import Tensor, nn
from torch.func import functional_call

from .._types import Params
from ..functional import preprocess_gradient
from ..inner import InnerOptimizer, inner_loop
from ..tasks import Task
from .base import Algorithm, inner_steps_pair, submodule_params

GATES = "metalearner."


class MetaLearnerCell(nn.Module):
    """The two layers, shared by every coordinate: an LSTM over ``(grad, loss)`` features and the gate layer.

    Input per coordinate: the preprocessed gradient and loss, 4 features; gates read the first
    layer's hidden state ``h (n, hidden)``, the parameter ``c (n,)`` and the gate's previous value.
    """

    def __init__(self, hidden: int = 20) -> None:
        super().__init__()
        self.lstm = nn.LSTMCell(4, hidden)
        self.input_gate = nn.Linear(hidden + 2, 1)
        self.forget_gate = nn.Linear(hidden + 2, 1)
        with torch.no_grad():  # the paper: forget gate near 1 (keep the parameters), input gate small (a small step)
            for gate, low, high in ((self.forget_gate, 4.0, 6.0), (self.input_gate, -5.0, -4.0)):
                gate.weight.uniform_(-0.01, 0.01)
                gate.bias.uniform_(low, high)

    def forward(self, features: Tensor, state: tuple[Tensor, Tensor, Tensor, Tensor], c: Tensor, g: Tensor):
        """``features (n, 4)``, ``state = (h, cell, i_prev, f_prev)``, parameters ``c (n,)``, gradient ``g (n,)``
        -> new parameters ``(n,)`` and state."""
        h, cell, i_prev, f_prev = state
        h, cell = self.lstm(features, (h, cell))
        i = torch.sigmoid(self.input_gate(torch.cat([h, c[:, None], i_prev[:, None]], -1))).squeeze(-1)
        f = torch.sigmoid(self.forget_gate(torch.cat([h, c[:, None], f_prev[:, None]], -1))).squeeze(-1)
        return f * c - i * g, (h, cell, i, f)


def cell_step(cell: MetaLearnerCell, weights: Params, features: Tensor, state: tuple[Tensor, ...], c: Tensor, g: Tensor):
    """One meta-learner update, ``cell`` run with ``weights``."""
    return functional_call(cell, weights, (features, state, c, g))


_silence_lock = threading.Lock()
_silence_depth = 0  # threads inside ``silenced``
_silence_context: warnings.catch_warnings | None = None  # open while _silence_depth > 0


@contextlib.contextmanager
def silenced():
    """torch.compile's own warnings while it imports and traces (it reads ``.grad`` of non-leaf inputs).

    Safe across threads (the ``threads`` strategy's workers): the first thread in installs the two
    filters and the last one out restores the filters as they were, where nested
    ``warnings.catch_warnings`` would restore out of order and leave one thread's filters behind.
    """
    global _silence_depth, _silence_context
    with _silence_lock:
        if _silence_depth == 0:
            _silence_context = warnings.catch_warnings()
            _silence_context.__enter__()
            warnings.filterwarnings("ignore", "The .grad attribute of a Tensor that is not a leaf", UserWarning)
            warnings.filterwarnings("ignore", "`torch.jit.script_method` is deprecated", DeprecationWarning)
        _silence_depth += 1
    try:
        yield
    finally:
        with _silence_lock:
            _silence_depth -= 1
            if _silence_depth == 0:
                _silence_context.__exit__(None, None, None)
                _silence_context = None


@functools.cache
def compiled_cell_step(device_type: str):
    """``cell_step`` through ``torch.compile`` for ``device_type`` (built on first use, one graph per task size).

    The cell is ~90 % of a Meta-LSTM iteration, a chain of small elementwise operators over every
    coordinate that the compiler fuses (``benchmarks/metalstm_compile.py``). On CPU (which needs a
    C++ compiler) the graph runs from a C++ wrapper that releases the GIL, so the ``threads``
    strategy's workers run their cells at once (the Python wrapper holds it: two workers ran 15 %
    slower than with the C++ one).
    """
    if device_type == "cpu":
        compiler = os.environ.get("CXX", "clang++" if sys.platform == "darwin" else "g++")  # inductor's default
        if shutil.which(compiler) is None:
            raise RuntimeError(f"compile_cell=True on CPU needs a C++ compiler, and {compiler!r} is not on PATH: install "
                               f"one (Debian: apt install g++) or name it in $CXX, or set algorithm.compile_cell=false")
    with silenced():
        compiled = torch.compile(cell_step, dynamic=False, options={"cpp_wrapper": device_type == "cpu"})

    def run(*args):
        with silenced():
            return compiled(*args)
    return run


def meta_lstm_rule(cell: MetaLearnerCell, weights: Params, compiled: bool = False) -> InnerOptimizer:
    """The meta-learner as an update rule of the shared inner loop, with ``cell``'s weights taken from ``weights``.

    State: ``(h, cell, i, f)``, one row per coordinate of the adapted parameters (all of them
    flattened in key order). Uses the support loss (``uses_loss``). ``compiled``: run the cell
    through ``compiled_cell_step`` (the same values, to float rounding).
    """

    def init(params: Params) -> tuple[Tensor, ...]:
        n = sum(p.numel() for p in params.values())
        like = next(iter(params.values()))
        zeros = like.new_zeros(n, cell.lstm.hidden_size)
        return zeros, zeros, like.new_zeros(n), like.new_zeros(n)

    def update(grads: Params, state: tuple[Tensor, ...], params: Params, step: int, loss: Tensor):
        c = torch.cat([p.reshape(-1) for p in params.values()])  # (n,)
        g = torch.cat([grads[k].reshape(-1) for k in params]).detach()
        features = torch.cat([preprocess_gradient(g), preprocess_gradient(loss.detach()).expand(len(c), 2)], -1)  # (n, 4)
        run_cell = compiled_cell_step(c.device.type) if compiled else cell_step
        new_c, state = run_cell(cell, weights, features, state, c, g)
        sizes = [p.numel() for p in params.values()]
        return {k: v.view_as(params[k]) for k, v in zip(params, new_c.split(sizes))}, state

    return InnerOptimizer(init, update, uses_loss=True)


class MetaLSTM(Algorithm):
    """Meta-LSTM over any backbone whose output layer has ``ways`` units.

    Args:
        model: the learner (a plain ``nn.Module``); its parameters are the cell state's start ``c_0``.
        inner_steps: meta-learner updates on the support set while meta-training (the paper's T).
        eval_inner_steps: updates at test time (default: ``inner_steps``).
        hidden: hidden units of the first LSTM layer (the paper: 20).
        loss: ``"cross_entropy"``.
        strategy: meta-batch execution (``algorithms/strategies.py``).
        bn: BatchNorm policy (``learnfast.batchnorm``); ``"transductive"``, batch statistics in
            training and test as in the paper.
        compile_cell: run the meta-learner cell through ``torch.compile`` (same values to float
            rounding; on CPU 1.5-1.7x faster per iteration after a compile of ~20 s per task size;
            needs a C++ compiler). Changes how a run executes, not what it computes: ``--resume`` may
            switch it, and a restored checkpoint (``learnfast eval``) runs the cell eagerly.

    Example:
        >>> metalstm = MetaLSTM(Conv4(out_features=5, strided=True), inner_steps=3)
        >>> metalstm.meta_loss(batch).loss.backward()   # grads on model.* (c_0) and metalearner.*

    References:
        Ravi & Larochelle (2017), https://openreview.net/forum?id=rJY0-Kcll
    """

    def __init__(
        self,
        model: nn.Module,
        inner_steps: int = 5,
        eval_inner_steps: int | None = None,
        hidden: int = 20,
        loss: str = "cross_entropy",
        strategy: str = "auto",
        bn: str = "transductive",
        compile_cell: bool = False,
    ) -> None:
        super().__init__(loss=loss, strategy=strategy)
        if bn == "per-step":
            raise ValueError("MetaLSTM cannot use bn='per-step': its cell state is every parameter of the learner; "
                             "use bn='transductive' or 'support'")
        if compile_cell and strategy == "vmap":
            raise ValueError("MetaLSTM cannot run a compiled cell under strategy='vmap' (torch.compile inside torch.func.vmap); "
                             "use strategy='threads' or 'loop' with compile_cell=True, or compile_cell=False")
        self.model = model
        self.inner_steps, self.eval_inner_steps = inner_steps_pair(inner_steps, eval_inner_steps)
        self.metalearner = MetaLearnerCell(hidden)
        self.compile_cell = compile_cell
        self.inner = inner_loop("first-order", False, bn, strategy)

    def execution_strategy(self, batch: Task) -> str:
        """As for every algorithm, except that ``"auto"`` on an accelerator runs a compiled cell by ``loop``, not ``vmap``."""
        strategy = super().execution_strategy(batch)
        return "loop" if strategy == "vmap" and self.compile_cell and self.strategy == "auto" else strategy

    def task_predict(self, meta_params: Params, task: Task, inner_steps: int) -> Tensor:
        rule = meta_lstm_rule(self.metalearner, submodule_params(meta_params, GATES), self.compile_cell)
        return self.inner.predict(self.model, submodule_params(meta_params), task, self.loss_fn, inner_steps, rule)
