"""The algorithm registry: one plain dict, name -> class, read by the CLI, trainer and tests."""
from __future__ import annotations

from .anil import ANIL
from .base import Algorithm, MetaOutput
from .maml import MAML
from .matching import MatchingNet
from .metasgd import MetaSGD
from .protonet import ProtoNet
from .relation import RelationNet
from .reptile import Reptile

ALGORITHMS: dict[str, type[Algorithm]] = {
    "anil": ANIL,
    "maml": MAML,
    "matching": MatchingNet,
    "metasgd": MetaSGD,
    "protonet": ProtoNet,
    "relation": RelationNet,
    "reptile": Reptile,
}

__all__ = ["ALGORITHMS", "ANIL", "Algorithm", "MAML", "MatchingNet", "MetaOutput", "MetaSGD", "ProtoNet", "RelationNet", "Reptile"]
