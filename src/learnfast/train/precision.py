"""Mixed precision for the meta-training step: ``[train] precision = "fp32" | "bf16"``.

``"bf16"`` runs the meta-loss under ``torch.autocast`` with ``bfloat16``: convolutions and matrix
products compute in bfloat16 while the weights, their gradients and the optimizer state stay in
float32 (the usual automatic mixed precision; bfloat16 keeps float32's exponent range, so no loss
scaling is needed). On CPUs with AVX-512 BF16 or AMX and on recent GPUs this cuts the Conv4's
forward and backward time by about half (``benchmarks/protonet_speed.py``). Validation, test
evaluation and checkpoints are always float32, so reported accuracies do not depend on it.

It is meant for the metric methods (ProtoNet, Matching, Relation, TADAM, ...), whose loss is one
forward pass. Gradient-based inner loops run under it too, but their inner updates and
second-order terms then carry bfloat16 rounding (about 3 significant digits).
"""
from __future__ import annotations

import contextlib
from typing import ContextManager

import torch

from .config import ConfigError

PRECISIONS = ("fp32", "bf16")


def check_precision(value: str, where: str = "[train]") -> None:
    """Raises ``ConfigError`` for a precision other than ``"fp32"`` or ``"bf16"``."""
    if value not in PRECISIONS:
        hint = " (float16 needs loss scaling; use \"bf16\")" if value in ("fp16", "float16", "half") else ""
        raise ConfigError(f"{where} precision = {value!r} is not known{hint}; choose \"fp32\" or \"bf16\"")


def autocast(precision: str, device_type: str = "cpu") -> ContextManager:
    """The context the training step runs in: ``torch.autocast`` to bfloat16, or nothing for fp32."""
    check_precision(precision)
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=torch.bfloat16)
