"""The algorithm registry: one plain dict, name -> class, read by the CLI, trainer and tests."""
from __future__ import annotations

from .base import Algorithm, MetaOutput
from .maml import MAML
from .protonet import ProtoNet

ALGORITHMS: dict[str, type[Algorithm]] = {
    "maml": MAML,
    "protonet": ProtoNet,
}

__all__ = ["ALGORITHMS", "Algorithm", "MAML", "MetaOutput", "ProtoNet"]
