"""From a checkpoint file back to a ready algorithm, and the evaluation defaults of its config."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..algorithms import Algorithm
from .build import build_algorithm, build_source
from .checkpoint import CheckpointError, load_checkpoint, restore_weights
from .config import RunConfig
from .distributed import resolve_device

TRAINING_ONLY = ("compile_cell",)  # [algorithm] keys a restored checkpoint leaves at their defaults
VAL_SEED = 12345  # validation episodes are fixed, and distinct from the default test seed
PARTS = ("test", "val")


@dataclass
class Restored:
    """A checkpoint's algorithm (weights loaded, eval mode), the config that built it and the file's metadata."""

    algorithm: Algorithm
    config: RunConfig
    meta: dict[str, Any]


def restore(
    path: str | os.PathLike,
    ways: int | None = None,
    shots: int | None = None,
    queries: int | None = None,
    split: str | None = None,
    device: str | torch.device = "cpu",
) -> Restored:
    """Loads ``path`` (no code executed) and rebuilds its algorithm on ``device`` (``distributed.resolve_device``);
    ``ways`` / ``shots`` / ``queries`` override the config's evaluation episodes, ``split`` its class split;
    ``TRAINING_ONLY`` keys of the config take their defaults."""
    ckpt = load_checkpoint(path)
    if not isinstance(ckpt.meta.get("config"), dict):
        raise CheckpointError(f"{path}: its metadata holds no run config; it was not written by `learnfast train` "
                              f"(use a run's best.safetensors or a zoo file)")
    cfg = RunConfig.from_dict(ckpt.meta["config"], source=str(path))
    for key in TRAINING_ONLY:  # how training ran (a compiled cell needs a compiler), not what the checkpoint is
        cfg.algorithm.pop(key, None)
    for key, value in (("ways", ways), ("shots", shots), ("queries", queries)):
        if value is not None:
            cfg.override("eval", key, value)
    if split is not None:
        cfg.override("data", "split", split)
    algorithm = build_algorithm(cfg)
    restore_weights(algorithm, ckpt.weights, path)
    return Restored(algorithm.to(resolve_device(device)).eval(), cfg, ckpt.meta)


def evaluation_seed(cfg: RunConfig, part: str) -> int:
    """The fixed episode set's default seed: the config's for test, training's validation seed for val
    (so the first ``val_episodes`` episodes are the ones the run validated on)."""
    return VAL_SEED if part == "val" else cfg.eval.seed


def evaluation_source(cfg: RunConfig, part: str, data_root: str | Path | None = None):
    """Episodes of ``cfg.eval``'s shape from the ``part`` classes (test or val)."""
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, got {part!r}")
    e = cfg.eval
    return build_source(cfg, part, e.ways, e.shots, e.queries, data_root)
