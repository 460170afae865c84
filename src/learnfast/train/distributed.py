"""Devices, and meta-training across processes with ``torch.distributed`` (launched by ``torchrun``).

``torchrun --nproc-per-node N -m learnfast train CFG ...`` starts N ranks. Every rank draws the same
seeded meta-batch and keeps its own contiguous share of the tasks (``shard_tasks``), so the shares
are disjoint and the run's data do not depend on the number of ranks; the meta-gradients are
averaged by an all-reduce (gloo on CPU, nccl on CUDA) before the identical outer step on every
rank. Rank 0 alone holds the run lock and writes checkpoints and the log. Validation and test
episodes are split across ranks by index and gathered back in order, so the fixed episode set and
its score are those of one process. A run may be resumed under any number of ranks that divides
the meta-batch.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor

from ..tasks import Task
from .config import ConfigError

DEVICES = ("cpu", "cuda", "auto")


def resolve_device(name: str | torch.device) -> torch.device:
    """``"cpu"``, ``"cuda"`` (this rank's GPU under torchrun: ``LOCAL_RANK``) or ``"auto"`` (CUDA when there is one)."""
    if isinstance(name, torch.device):
        return name
    if name not in DEVICES:
        raise ConfigError(f"device {name!r} is not known; choose one of {', '.join(DEVICES)}")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("device 'cuda' was asked for but torch sees no CUDA device; use --device cpu or auto")
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
    return torch.device("cpu")


@dataclass(frozen=True)
class Ranks:
    """This process's place in the run: ``rank`` of ``world`` processes (``world == 1``: no torch.distributed)."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def init_ranks(device: torch.device) -> Ranks:
    """``Ranks`` from torchrun's environment (``WORLD_SIZE``, ``RANK``, ...), initialising the process group once."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Ranks()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Ranks(dist.get_rank(), dist.get_world_size())


def check_divides(meta_batch: int, ranks: Ranks) -> None:
    if meta_batch % ranks.world:
        raise ConfigError(f"[train] meta_batch = {meta_batch} cannot be split across {ranks.world} processes; "
                          f"use a number of processes that divides it")


def shard_tasks(batch: Task, ranks: Ranks) -> Task:
    """This rank's contiguous share of a meta-batch ``(B, ...) -> (B / world, ...)``."""
    if not ranks.active:
        return batch
    share = batch.batch_size // ranks.world
    return Task(*(field[ranks.rank * share:(ranks.rank + 1) * share] for field in batch))


def average_gradients(params: list[Tensor], ranks: Ranks) -> None:
    """Replaces every ``p.grad`` by its mean over the ranks (one all-reduce of a flat buffer)."""
    if not ranks.active:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= ranks.world
    for p, part in zip(params, flat.split([g.numel() for g in grads])):
        p.grad = part.view_as(p).clone()


def mean_over_ranks(value: Tensor, ranks: Ranks) -> Tensor:
    """The mean of a tensor over the ranks (the tensor itself in one process)."""
    if not ranks.active:
        return value
    total = value.detach().clone()
    dist.all_reduce(total)
    return total / ranks.world


def gather_in_order(local: Tensor, episodes: int, ranks: Ranks) -> Tensor:
    """Per-episode scores computed for indices ``rank, rank + world, ...`` -> all ``(episodes,)`` in index order."""
    if not ranks.active:
        return local
    parts: list = [None] * ranks.world
    dist.all_gather_object(parts, local.cpu())
    ordered = torch.empty(episodes, dtype=local.dtype)
    for rank, part in enumerate(parts):
        ordered[rank::ranks.world] = part
    return ordered


def agree(error: str | None, ranks: Ranks) -> str | None:
    """Rank 0's error message (or ``None``) on every rank, so that all ranks stop together."""
    if not ranks.active:
        return error
    box = [error]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(ranks: Ranks) -> None:
    if ranks.active:
        dist.barrier()


def close_ranks() -> None:
    """Leave the process group together: a barrier, then destroy it. A rank that exits while another one
    is still connected can be aborted by gloo (SIGABRT at exit), which failed torchrun runs at random."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def exit_rank(code: int) -> None:
    """Ends the process with ``code``; under torchrun without the interpreter's finalisation.

    After the process group is destroyed, gloo's worker threads can still release tensors during
    interpreter shutdown and abort the rank ("terminate called without an active exception",
    SIGABRT), about one exit in six on a loaded 2-core machine: torchrun then reports a failed run
    although every checkpoint is written. A rank therefore flushes its output and leaves with
    ``os._exit``; a single process exits normally.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
