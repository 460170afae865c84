"""The algorithm registry: one plain dict, name -> class, read by the CLI, trainer and tests."""
from __future__ import annotations

from .anil import ANIL
from .base import Algorithm, MetaOutput
from .baseline import Baseline
from .l2o import L2O
from .maml import MAML
from .maml_rl import MAMLRL
from .mann import MANN
from .matching import MatchingNet
from .melu import MeLU
from .metanet import MetaNet
from .metalstm import MetaLSTM
from .metasgd import MetaSGD
from .mtl import MTL
from .protonet import ProtoNet
from .relation import RelationNet
from .reptile import Reptile
from .reptile_rl import ReptileRL
from .siamese import SiameseNet
from .tadam import TADAM

ALGORITHMS: dict[str, type[Algorithm]] = {
    "anil": ANIL,
    "baseline": Baseline,
    "l2o": L2O,
    "maml": MAML,
    "maml-rl": MAMLRL,
    "mann": MANN,
    "matching": MatchingNet,
    "melu": MeLU,
    "metanet": MetaNet,
    "metalstm": MetaLSTM,
    "metasgd": MetaSGD,
    "mtl": MTL,
    "protonet": ProtoNet,
    "relation": RelationNet,
    "reptile": Reptile,
    "reptile-rl": ReptileRL,
    "siamese": SiameseNet,
    "tadam": TADAM,
}

__all__ = ["ALGORITHMS", "ANIL", "Algorithm", "Baseline", "L2O", "MAML", "MAMLRL", "MANN", "MatchingNet", "MeLU", "MetaNet", "MetaLSTM", "MetaOutput", "MetaSGD", "MTL", "ProtoNet", "RelationNet", "Reptile", "ReptileRL", "SiameseNet", "TADAM"]
