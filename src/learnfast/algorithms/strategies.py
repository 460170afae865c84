"""Meta-batch execution beyond the reference loop: tasks on worker threads, and ``"auto"``.

``threads``  every task's exact meta-gradient by ordinary autograd (the reference loop's maths,
             one task at a time per worker), with tasks spread over ``torch.get_num_threads()``
             worker threads that each run single-threaded, and one-channel images relabelled
             channels-last. Results are summed in task order, so the outcome does not depend on
             which worker finished first.
``auto``     ``threads`` on CPU; on an accelerator ``vmap`` (``loop`` where the memory option
             cannot run under ``vmap``).

Why threads, measured on the 2-core CPU this library is developed on (MAML, Conv4 with max-pool,
5-way 1-shot, 15 queries): one task is ~50 operator calls over tensors of 75 images, most of them
BatchNorm/ReLU/pool passes and small second-order pieces. Splitting each operator over two
OpenMP threads makes both wait on each other ~50 times per task, and when anything else runs on
the machine the waits dominate; two tasks at once, each on one thread, never wait. Batching the
tasks instead (``vmap``) cannot keep the channels-last layout, so max-pool runs ~10x slower, and it
holds every task's activations at once. ``torch.compile`` of the per-task gradient took minutes to
compile on this CPU and was 5% faster (its max-pool backward is a scatter). See
``benchmarks/README.md`` for the numbers.

Cost: each worker holds one task's graph, so peak memory grows with the number of workers.
Part of the measured gain over a single-threaded loop is glibc's: worker threads allocate from
per-thread arenas that keep freed memory, while the main thread's large blocks go back to the
kernel and page-fault again; ``learnfast.host_memory.keep_freed_memory()`` gives every loop that.
"""
from __future__ import annotations

import copy
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator, TypeVar

import torch
from torch import Tensor, nn

from ..tasks import Task, task_at

STRATEGIES = ("loop", "vmap", "threads", "auto")
Result = TypeVar("Result")


def resolve_strategy(strategy: str, device: torch.device, vmap_ok: bool = True) -> str:
    """The strategy that runs a batch on ``device``: ``auto`` picks the measured fastest, others are kept."""
    if strategy != "auto":
        return strategy
    if device.type == "cpu":
        return "threads"
    return "vmap" if vmap_ok else "loop"


def channels_last_images(x: Tensor) -> Tensor:
    """One-channel images ``(n, 1, H, W)`` relabelled channels-last without a copy; anything else unchanged.

    With one channel both layouts hold the same bytes, but a convolution picks its output layout
    from its input's strides, and a plain ``(n, 1, H, W)`` tensor reads as the default layout: the
    first conv's output, the network's largest activation, then goes through BatchNorm, ReLU and
    max-pool in the layout where they are slowest. Only the (meaningless) stride of the size-1
    channel dimension changes, so code that reshapes the input sees the same tensor.
    """
    if x.dim() != 4 or x.shape[1] != 1 or not x.is_floating_point() or x.stride(3) != 1 or x.stride(2) != x.shape[3]:
        return x
    return x.as_strided(x.shape, (x.stride(0), 1, x.stride(2), 1), x.storage_offset())


def channels_last_task(task: Task) -> Task:
    """``task`` with its image inputs relabelled channels-last (see ``channels_last_images``)."""
    return Task(channels_last_images(task.support_x), task.support_y, channels_last_images(task.query_x), task.query_y)


def replica(module: nn.Module) -> nn.Module:
    """A copy of ``module``'s structure that shares every parameter and buffer with it (no tensor is copied).

    ``functional_call`` swaps a module's parameters while it runs, so concurrent calls need a
    module object each; the tensors themselves stay shared.
    """
    shared = {id(t): t for t in (*module.parameters(), *module.buffers())}
    return copy.deepcopy(module, shared)


def worker_count(batch_size: int) -> int:
    """Worker threads for a batch: one per intra-op thread torch would use, at most one per task."""
    return max(1, min(torch.get_num_threads(), batch_size))


def map_tasks(algorithm: nn.Module, fn: Callable[[nn.Module, Task], Result], batch: Task) -> Iterator[Result]:
    """``fn(module, task)`` for every task of ``batch``, yielded in task order.

    Tasks get channels-last image inputs and run on ``worker_count`` threads, each single-threaded
    and calling ``fn`` with its own ``replica`` of ``algorithm``; with one worker they run here, on
    ``algorithm`` itself. Workers use the caller's grad mode.
    """
    tasks = [channels_last_task(task_at(batch, i)) for i in range(batch.batch_size)]
    workers = worker_count(len(tasks))
    if workers == 1:
        yield from (fn(algorithm, task) for task in tasks)
        return
    grad_enabled = torch.is_grad_enabled()
    local = threading.local()

    def start() -> None:
        torch.set_num_threads(1)  # this worker thread only: the caller's setting is untouched
        local.module = replica(algorithm)

    def run(task: Task) -> Result:
        with torch.set_grad_enabled(grad_enabled):
            return fn(local.module, task)

    with ThreadPoolExecutor(workers, initializer=start, thread_name_prefix="learnfast-task") as pool:
        yield from pool.map(run, tasks)


def threads_meta_gradient(algorithm: nn.Module, meta_params: dict[str, Tensor], batch: Task, steps: int
                          ) -> tuple[dict[str, Tensor], Tensor, Tensor]:
    """Mean per-task meta-gradient, per-task losses ``(B,)`` and detached predictions ``(B, Q, ...)``.

    Each task differentiates its own ``task_loss`` with respect to fresh leaves that share the
    meta-parameters' storage: the reference loop's gradient, task by task, with no outer graph kept.
    """
    names = list(meta_params) if torch.is_grad_enabled() else []  # under no_grad: the loss value only

    def one_task(module: nn.Module, task: Task) -> tuple[Tensor, Tensor, tuple[Tensor, ...]]:
        if not names:
            loss, predictions = module.task_loss(meta_params, task, steps)
            return loss.detach(), predictions.detach(), ()
        leaves = {k: v.detach().requires_grad_() for k, v in meta_params.items()}
        loss, predictions = module.task_loss(leaves, task, steps)
        grads = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True, materialize_grads=True)
        return loss.detach(), predictions.detach(), grads

    total: list[Tensor] | None = None
    losses, predictions = [], []
    for loss, prediction, grads in map_tasks(algorithm, one_task, batch):
        total = list(grads) if total is None else [acc + g for acc, g in zip(total, grads)]
        losses.append(loss)
        predictions.append(prediction)
    mean_grads = {k: g / batch.batch_size for k, g in zip(names, total or ())}
    return mean_grads, torch.stack(losses), torch.stack(predictions)


def threads_predict(algorithm: nn.Module, meta_params: dict[str, Tensor], batch: Task, steps: int) -> Tensor:
    """Query predictions ``(B, Q, ...)``, tasks on worker threads (no meta-gradient: callers check)."""
    return torch.stack(list(map_tasks(algorithm, lambda module, task: module.task_predict(meta_params, task, steps), batch)))
