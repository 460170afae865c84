"""Type aliases shared across the package."""
from __future__ import annotations

from typing import Callable

from torch import Tensor

Params = dict[str, Tensor]
"""Parameters keyed like ``nn.Module.named_parameters()``."""

LossFn = Callable[[Tensor, Tensor], Tensor]
"""``loss_fn(predictions, targets) -> scalar``."""
