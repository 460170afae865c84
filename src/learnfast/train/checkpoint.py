"""Checkpoints: one safetensors file holding weights, optional optimizer state, RNG state and config.

Written atomically (temporary file, then ``os.replace``) so a crash never leaves a half-written
checkpoint; loaded without executing code.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from ..data.root import replace_atomic

FORMAT = "learnfast-checkpoint-1"

class CheckpointError(RuntimeError):
    """A checkpoint is missing, truncated or not a learnfast checkpoint."""

@dataclass
class Checkpoint:
    """Contents of a checkpoint file.

    ``weights``: the algorithm's ``state_dict``; ``optimizer``: ``state_dict`` of the outer optimizer
    or ``None``; ``rng``: named generator states; ``meta``: JSON-able config, iteration, metrics.
    """

    weights: dict[str, torch.Tensor]
    meta: dict[str, Any]
    optimizer: dict[str, Any] | None = None
    rng: dict[str, torch.Tensor] = field(default_factory=dict)

def save_checkpoint(path: str | os.PathLike, ckpt: Checkpoint) -> None:
    """Writes ``ckpt`` to ``path`` atomically; refuses non-finite weights (``CheckpointError``), so a
    run that diverged never replaces a good checkpoint with a poisoned one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    bad = sorted(k for k, v in ckpt.weights.items() if v.is_floating_point() and not bool(torch.isfinite(v).all()))
    if bad:
        raise CheckpointError(f"not writing {path}: weights {bad[:5]} hold NaN or inf; the previous checkpoint is kept")
    tensors = {f"weights/{k}": v.detach().contiguous().cpu() for k, v in ckpt.weights.items()}
    tensors.update({f"rng/{k}": v for k, v in ckpt.rng.items()})
    optim_meta = None
    if ckpt.optimizer is not None:
        scalars: dict[str, Any] = {}
        for idx, state in ckpt.optimizer["state"].items():
            for name, value in state.items():
                if isinstance(value, torch.Tensor):
                    tensors[f"optim/{idx}/{name}"] = value.detach().contiguous().cpu()
                else:
                    scalars[f"{idx}/{name}"] = value
        optim_meta = {"param_groups": ckpt.optimizer["param_groups"], "scalars": scalars}
    metadata = {"format": FORMAT, "meta": json.dumps(ckpt.meta), "optimizer": json.dumps(optim_meta)}
    replace_atomic(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))

def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}; pass the .safetensors file a `learnfast train` run wrote (e.g. runs/NAME/best.safetensors or zoo/...)")
    try:
        tensors = load_file(str(path))

        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path} is truncated or not a safetensors file ({err}); use another checkpoint (runs keep best.safetensors and last.safetensors)") from err
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{path} is a safetensors file but not a learnfast checkpoint (format {metadata.get('format')!r})")
    try:
        meta, optim_meta = json.loads(metadata["meta"]), json.loads(metadata.get("optimizer", "null"))
    except (KeyError, ValueError, RecursionError) as err:
        raise CheckpointError(f"{path}: its metadata is not valid learnfast JSON ({type(err).__name__}); use another checkpoint") from err
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: its metadata is not a JSON object; it was not written by learnfast")
    weights = {k[len("weights/"):]: v for k, v in tensors.items() if k.startswith("weights/")}
    rng = {k[len("rng/"):]: v for k, v in tensors.items() if k.startswith("rng/")}
    optimizer = None
    if optim_meta is not None:
        state: dict[int, dict[str, Any]] = {}
        for key, value in tensors.items():
            if key.startswith("optim/"):
                _, idx, name = key.split("/", 2)
                state.setdefault(int(idx), {})[name] = value
        for key, value in optim_meta["scalars"].items():
            idx, name = key.split("/", 1)
            state.setdefault(int(idx), {})[name] = value
        optimizer = {"state": state, "param_groups": optim_meta["param_groups"]}
    return Checkpoint(weights=weights, meta=meta, optimizer=optimizer, rng=rng)


def restore_weights(module: torch.nn.Module, weights: dict[str, torch.Tensor], path: str | os.PathLike) -> None:
    """``module.load_state_dict(weights)`` (strict), with a ``CheckpointError`` naming what does not fit."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    shapes = sorted(k for k in set(expected) & set(weights) if expected[k].shape != weights[k].shape)
    if missing or unexpected or shapes:
        raise CheckpointError(
            f"{path} does not fit the model its config builds: missing {missing[:5]}, unexpected {unexpected[:5]}, "
            f"different shapes {shapes[:5]}; the file is damaged or was edited"
        )
    module.load_state_dict(weights)
