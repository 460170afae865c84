"""Backbones: plain ``nn.Module``s that any algorithm can adapt through ``functional_call``."""
from __future__ import annotations

from torch import nn

from .conv4 import Conv4
from .conv4_maps import Conv4Maps
from .frozen import Frozen, unwrap
from .mlp import MLP
from .sentence import DIM as SENTENCE_DIM
from .sentence import EmbeddingHead
from .text import HashingEncoder

BACKBONES = {
    "conv4": "4 x [conv3x3-64, BatchNorm, ReLU, max-pool 2] (Vinyals / ProtoNet); 64-d features at 28x28",
    "conv4-strided": "4 x [conv3x3-64 stride 2, BatchNorm, ReLU], spatial mean (MAML's Omniglot network)",
    "conv4-maps": "4 x [conv3x3-64, BatchNorm, ReLU], max-pool in the first two only (Relation Net); 64x7x7 feature maps at 28x28",
    "mlp": "fully connected ReLU network, hidden sizes 40-40 by default (MAML's sinusoid network)",
    "melu": "MeLU: user and item attribute embeddings (32-d) and MLP decision layers 64-64-1 (rating data sets only)",
    "melu-items": "melu plus an item-identity embedding, zero for items never rated in training (rating data sets only)",
    "text-hashing": "hashed word and character n-grams, mean of trainable vectors (hidden = width, 64 by default)",
    "text-minilm": "fixed all-MiniLM-L6-v2 sentence embeddings (learnfast[text]) and a trainable linear map from the identity",
}
TEXT_BACKBONES = ("text-hashing", "text-minilm")


def build_backbone(name: str, in_shape: tuple[int, ...], out_features: int | None, hidden: int | None = None) -> nn.Module:
    """Builds a backbone by name for inputs of shape ``in_shape`` (without batch dim).

    ``out_features=None`` leaves off the head (for metric methods that use the features).
    """
    if name in ("conv4", "conv4-strided"):
        return Conv4(in_channels=in_shape[0], hidden=hidden or 64, out_features=out_features, strided=name == "conv4-strided")
    if name == "conv4-maps":
        if out_features is not None:
            raise ValueError(f"conv4-maps returns feature maps, for metric methods such as relation; an algorithm with an output layer ({out_features} units) needs backbone conv4 or conv4-strided")
        return Conv4Maps(in_channels=in_shape[0], hidden=hidden or 64)
    if name == "text-hashing":
        return HashingEncoder(dim=hidden or 64, out_features=out_features)
    if name == "text-minilm":
        return EmbeddingHead(dim=hidden or SENTENCE_DIM, out_features=out_features)
    if name in ("melu", "melu-items"):
        raise ValueError("backbone melu embeds a rating log's attributes; use it with dataset movielens-100k "
                         "(or build learnfast.models.melu.MeLUNet for your own attributes)")
    if name == "mlp":
        width = hidden or 40
        return MLP(in_features=in_shape[-1], hidden=(width, width), out_features=out_features or 1)
    raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)}")


__all__ = ["BACKBONES", "TEXT_BACKBONES", "Conv4", "Conv4Maps", "Frozen", "HashingEncoder", "MLP", "build_backbone", "unwrap"]
