"""Relation Networks.

Sung, Yang, Zhang, Xiang, Torr & Hospedales (2018). Learning to Compare: Relation Network for
Few-Shot Learning. CVPR.

Rather than fixing the metric, learn it: an embedding module turns images into feature maps, a
class is the element-wise sum of its support items' feature maps, and every (class, query) pair,
concatenated along the channels, goes through a relation module (two conv blocks, two fully
connected layers, sigmoid) that scores their similarity in [0, 1]. Training regresses the scores
onto the one-hot match with a mean squared error; a query takes the class of its highest score.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..models.conv4 import conv_block
from ..models.probe import like_model, output_shape
from ..tasks import Task, check_batch
from .base import Algorithm, MetaOutput, per_task, query_loss

REDUCTIONS = ("sum", "mean")
MIN_MAP_SIZE = 4  # the relation module's two 2x2 max-pools need at least 4x4 maps


def class_features(support_z: Tensor, support_y: Tensor, ways: int, reduction: str = "sum") -> Tensor:
    """Sum (or mean) of each class's support features: ``(B, S, *F)``, labels ``(B, S)`` -> ``(B, ways, *F)``."""
    onehot = F.one_hot(support_y, ways).to(support_z.dtype).transpose(1, 2)  # (B, N, S)
    if reduction == "mean":
        onehot = onehot / onehot.sum(-1, keepdim=True)
    return (onehot @ support_z.flatten(2)).unflatten(2, support_z.shape[2:])


def relation_pairs(query_z: Tensor, class_z: Tensor) -> Tensor:
    """Every (class, query) pair, concatenated along the channels with the class first.

    ``(B, Q, C, ...)`` x ``(B, N, C, ...)`` -> ``(B, Q*N, 2C, ...)``; pair ``q * N + n`` is query q with class n.
    """
    b, q, n = query_z.shape[0], query_z.shape[1], class_z.shape[1]
    classes = class_z.unsqueeze(1).expand(b, q, *class_z.shape[1:])  # (B, Q, N, C, ...)
    queries = query_z.unsqueeze(2).expand(b, q, n, *query_z.shape[2:])  # (B, Q, N, C, ...)
    return torch.cat([classes, queries], dim=3).flatten(1, 2)


class RelationModule(nn.Module):
    """Scores concatenated (class, query) pairs in [0, 1]: ``(P, 2C, H, W)`` or ``(P, 2D)`` -> ``(P,)``.

    Feature maps ``(C, H, W)`` (the paper's image module): two blocks of conv3x3-``channels``,
    BatchNorm, ReLU, 2x2 max-pool; then FC ``channels * (H // 4) * (W // 4) -> hidden``, ReLU,
    FC ``hidden -> 1``, sigmoid. Feature vectors ``(D,)`` (the paper's zero-shot module): FC
    ``2D -> hidden``, ReLU, FC ``hidden -> 1``, sigmoid.

    Args:
        feature_shape: the embedding module's output for one item, ``(C, H, W)`` or ``(D,)``.
        channels: conv channels (paper: 64).
        hidden: units of the hidden FC layer (paper: 8).
    """

    def __init__(self, feature_shape: tuple[int, ...], channels: int = 64, hidden: int = 8) -> None:
        super().__init__()
        if len(feature_shape) == 3:
            c, h, w = feature_shape
            if min(h, w) < MIN_MAP_SIZE:
                raise ValueError(
                    f"feature maps of {h}x{w} are too small for the relation module's two 2x2 max-pools "
                    f"(at least {MIN_MAP_SIZE}x{MIN_MAP_SIZE}); use larger inputs, a backbone that keeps larger maps "
                    f"(conv4-maps: 7x7 at 28x28), or one that returns flat feature vectors"
                )
            self.features: nn.Module = nn.Sequential(
                conv_block(2 * c, channels, pool=True), conv_block(channels, channels, pool=True), nn.Flatten()
            )
            flat = channels * (h // 4) * (w // 4)
        elif len(feature_shape) == 1:
            self.features, flat = nn.Identity(), 2 * feature_shape[0]
        else:
            raise ValueError(
                f"the backbone returns items of shape {tuple(feature_shape)}; the relation module takes feature maps "
                f"(C, H, W) or vectors (D,): use backbone conv4-maps, or one that ends in a flat feature vector"
            )
        self.score = nn.Sequential(nn.Linear(flat, hidden), nn.ReLU(), nn.Linear(hidden, 1), nn.Sigmoid())

    def forward(self, pairs: Tensor) -> Tensor:
        return self.score(self.features(pairs)).squeeze(-1)


class RelationNet(Algorithm):
    """Relation Networks: a learned relation module scores every (class, query) pair in [0, 1].

    The relation module is built once, at construction, from the shape of the backbone's output for
    one item, read off a dummy forward pass on ``in_shape`` (``models.probe.output_shape``): its
    convolutions take ``2C`` channels and its first FC layer ``channels * (H // 4) * (W // 4)``
    inputs. Inputs that give another feature shape later raise ``ValueError``.

    Support and query items of a task go through the embedding module together (one call per
    task), and the task's Q*N pairs through the relation module together; both run through
    ``per_task``, so BatchNorm statistics never mix tasks.

    Args:
        model: the embedding module ``(n, ...) -> (n, C, H, W)`` feature maps (e.g. ``Conv4Maps``),
            or ``(n, D)`` feature vectors.
        in_shape: shape of one input item, used once to read the feature shape off ``model``; default
            ``(in_features,)`` for a first ``nn.Linear``, ``(in_channels, 28, 28)`` for a first ``nn.Conv2d``.
        relation_channels: conv channels of the relation module (paper: 64).
        relation_hidden: units of its hidden FC layer (paper: 8).
        class_reduction: ``"sum"`` of a class's support features (paper) or their ``"mean"``; equal at
            1 shot; the mean keeps the relation module's input scale when test shots differ from training.

    Returns (forward): relation scores ``(B, Q, ways)`` in [0, 1]; ``meta_loss`` is their mean
    squared error against the one-hot query labels.

    Example:
        >>> relation = RelationNet(Conv4Maps(), in_shape=(1, 28, 28))   # 64x7x7 maps
        >>> relation.meta_loss(batch).loss.backward()                     # batch: Task of (B, ...) tensors
    """

    needs_head = False
    freezable = True

    def __init__(
        self,
        model: nn.Module,
        in_shape: tuple[int, ...] | None = None,
        relation_channels: int = 64,
        relation_hidden: int = 8,
        class_reduction: str = "sum",
    ) -> None:
        super().__init__(loss="mse")
        if class_reduction not in REDUCTIONS:
            raise ValueError(f"unknown class_reduction {class_reduction!r}; choose one of {REDUCTIONS}")
        self.model, self.class_reduction = model, class_reduction
        self.feature_shape = output_shape(model, in_shape)
        self.relation = like_model(RelationModule(self.feature_shape, relation_channels, relation_hidden), model)

    def forward(self, batch: Task) -> Tensor:
        check_batch(batch)
        ways = int(batch.support_y.max()) + 1
        s, q = batch.support_x.shape[1], batch.query_x.shape[1]
        z = per_task(self.model, torch.cat([batch.support_x, batch.query_x], dim=1))  # (B, S+Q, C, H, W)
        if tuple(z.shape[2:]) != self.feature_shape:
            raise ValueError(
                f"the relation module was built for features of shape {self.feature_shape}, but these inputs give "
                f"{tuple(z.shape[2:])}; build RelationNet with in_shape={tuple(batch.support_x.shape[2:])}"
            )
        pairs = relation_pairs(z[:, s:], class_features(z[:, :s], batch.support_y, ways, self.class_reduction))
        return per_task(self.relation, pairs).unflatten(1, (q, ways))  # (B, Q*N) -> (B, Q, N)

    def meta_loss(self, batch: Task, generator: torch.Generator | None = None) -> MetaOutput:
        scores = self(batch)
        targets = F.one_hot(batch.query_y, scores.shape[-1]).to(scores.dtype)  # (B, Q, N)
        return MetaOutput(query_loss(self.loss_fn, scores, targets), scores.detach())
