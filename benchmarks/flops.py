"""Counting and timing the floating-point work of one training step: what `limit.py` builds on.

``record(step)`` runs ``step()`` once under a dispatch mode that notes every operator PyTorch's
FLOP counter has a formula for (convolutions and their backward, matrix products), with its
arguments' shapes, strides and dtypes and its FLOPs (``torch.utils.flop_counter``'s formulas; a
multiply-add is two FLOPs). ``attainable_seconds(ops)`` replays each distinct operator alone on
random tensors of the same layout and sums the best times: the time the step would take if only
its FLOP-carrying kernels ran, each at the speed it reaches in isolation at those shapes. "Best"
is the faster of the operator on all threads and, per call, of one single-threaded copy per
thread running side by side (what learnfast's ``strategy="threads"`` does with whole tasks; small
shapes gain from it).
``conv4_flops`` is the same count derived by hand for learnfast's Conv4 (the check).

A dispatch mode is thread-local: record a step that runs on the calling thread (learnfast's
``strategy="loop"``, not ``"threads"``; the FLOPs are the same).
"""
from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry


@dataclass(frozen=True)
class Spec:
    """A tensor argument's layout, enough to rebuild a stand-in of it."""

    shape: tuple[int, ...]
    stride: tuple[int, ...]
    dtype: torch.dtype
    device: str


def _spec(value):
    """A hashable description of an operator argument: tensors become Specs, lists become ("list", ...)."""
    if isinstance(value, torch.Tensor):
        return Spec(tuple(value.shape), tuple(value.stride()), value.dtype, str(value.device))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, *map(_spec, value))
    return value


def _stand_in(value, generator: torch.Generator):
    """The inverse of ``_spec``, with random tensors of the recorded layout."""
    if isinstance(value, Spec):
        size = 1 + sum((n - 1) * s for n, s in zip(value.shape, value.stride))
        storage = torch.randn(size, generator=generator, dtype=torch.float64).to(value.dtype).to(value.device)
        return storage.as_strided(value.shape, value.stride)
    if isinstance(value, tuple) and value and value[0] in ("list", "tuple"):
        items = [_stand_in(v, generator) for v in value[1:]]
        return items if value[0] == "list" else tuple(items)
    return value


class _Recorder(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter = Counter()
        self.flops: dict = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            key = (func, _spec(tuple(args)), tuple(sorted((k, _spec(v)) for k, v in kwargs.items())))
            self.ops[key] += 1
            self.flops[key] = formula(*args, **kwargs, out_val=out)
        return out


@dataclass(frozen=True)
class Recording:
    """The FLOP-carrying operators of one step: ``ops`` counts each distinct call, ``flops`` its FLOPs."""

    ops: Counter
    flops: dict

    @property
    def total_flops(self) -> int:
        return sum(self.flops[key] * n for key, n in self.ops.items())

    def by_operator(self) -> dict[str, int]:
        totals: Counter = Counter()
        for key, n in self.ops.items():
            totals[str(key[0].overloadpacket.__name__)] += self.flops[key] * n
        return dict(totals)


def record(step: Callable[[], object]) -> Recording:
    """Runs ``step()`` once on this thread and returns its FLOP-carrying operators."""
    recorder = _Recorder()
    with recorder:
        step()
    return Recording(recorder.ops, recorder.flops)


def best_seconds(fn: Callable[[], object], repeats: int, sync: Callable[[], None]) -> float:
    """The fastest of ``repeats`` timed calls after one warm-up: the kernel's speed at its best."""
    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return min(times)


def side_by_side_seconds(fn: Callable[[], object], repeats: int) -> float:
    """Seconds per call of ``fn`` with one single-threaded copy per thread running at once, best of ``repeats``."""
    workers = torch.get_num_threads()
    if workers == 1:
        return float("inf")
    with ThreadPoolExecutor(workers, initializer=torch.set_num_threads, initargs=(1,)) as pool:
        def round_() -> None:
            for future in [pool.submit(fn) for _ in range(workers)]:
                future.result()

        return best_seconds(round_, repeats, lambda: None) / workers


def attainable_seconds(recording: Recording, repeats: int = 5, seed: int = 0) -> float:
    """Sum over the step's operators of (calls x the best time of that call replayed alone)."""
    generator = torch.Generator().manual_seed(seed)
    total = 0.0
    for (func, args, kwargs), n in recording.ops.items():
        on_cuda = any(a.device.startswith("cuda") for a in args[1:] if isinstance(a, Spec))
        real_args = _stand_in(args, generator)
        real_kwargs = {k: _stand_in(v, generator) for k, v in kwargs}

        def call() -> None:
            with torch.no_grad():
                func(*real_args, **real_kwargs)

        if on_cuda:
            total += n * best_seconds(call, repeats, torch.cuda.synchronize)
        else:
            total += n * min(best_seconds(call, repeats, lambda: None), side_by_side_seconds(call, repeats))
    return total


def matmul_flops_per_s(size: int = 2048, repeats: int = 5, device: str = "cpu") -> float:
    """Float32 ``size x size`` matrix product, best of ``repeats``: the machine's practical peak."""
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randn(size, size, generator=g).to(device) for _ in range(2))
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    return 2 * size**3 / best_seconds(lambda: a @ b, repeats, sync)


# -- the hand count, for learnfast's Conv4 (3x3 convolutions, padding 1, 2x2 max-pool) ------------
def conv4_layer_flops(image: tuple[int, int, int], hidden: int = 64, blocks: int = 4, out_features: int | None = None) -> list[int]:
    """Forward FLOPs per image of each weighted layer: the convolutions, then the linear head if any."""
    channels, height, width = image
    flops = []
    for _ in range(blocks):
        flops.append(2 * channels * hidden * 9 * height * width)
        channels, height, width = hidden, height // 2, width // 2
    if out_features is not None:
        flops.append(2 * channels * height * width * out_features)
    return flops


def forward_backward_flops(layers: list[int], images: int) -> int:
    """Forward, then the weights' gradients and the gradients of every layer's input but the first's."""
    return images * (2 * sum(layers) + sum(layers[1:]))


def maml_second_order_flops(layers: list[int], support: int, query: int) -> int:
    """One task of second-order MAML with one inner step, derived operator by operator.

    Support forward (sum c) and its gradient with ``create_graph`` (weights: sum c; inputs of layers
    2..L: sum' c); query forward and backward (2 sum q + sum' q); then the backward of the support
    gradient: each layer's weight-gradient product (x_l, dy_l) -> dW_l differentiated towards dy_l
    (sum c) and x_l (sum' c), each input-gradient product (dy_l, W_l) -> dx_l towards dy_l and W_l
    (2 sum' c), and the support forward again towards the weights and inputs (sum c + sum' c).
    """
    c, c2 = support * sum(layers), support * sum(layers[1:])
    q, q2 = query * sum(layers), query * sum(layers[1:])
    return 4 * c + 5 * c2 + 2 * q + q2

