"""Siamese Networks.

Koch, Zemel & Salakhutdinov (2015). Siamese Neural Networks for One-shot Image Recognition.
ICML Deep Learning Workshop.

Two images go through the same (twin) encoder; a learned weighted L1 distance between their
embeddings, ``sum_j w_j |z1_j - z2_j| + b``, passed through a sigmoid, is the probability that they
show the same class. The network is trained as a verifier on same/different pairs with binary
cross-entropy, and classifies one-shot by comparison: a query takes the class of the support image
it is most similar to. Here the pairs come from ordinary episodes, so Siamese runs through the same
trainer, evaluator and task contract as every other algorithm.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..models.probe import like_model, output_shape
from ..tasks import Task, check_batch
from .base import Algorithm, MetaOutput, per_task

CLASS_SCORES = ("max", "mean")
PAIRS = ("query-support", "all")


def weighted_l1_logits(a: Tensor, b: Tensor, distance: nn.Linear) -> Tensor:
    """Same-class logits of every (a, b) pair: ``(B, P, D)`` x ``(B, R, D)`` -> ``(B, P, R)``.

    ``logit(a_i, b_j) = sum_d w_d |a_id - b_jd| + bias``; its sigmoid is the probability of "same class".
    """
    return distance((a.unsqueeze(2) - b.unsqueeze(1)).abs()).squeeze(-1)  # (B, P, R, D) -> (B, P, R)


def pair_weights(same: Tensor, valid: Tensor, balance: bool, dtype: torch.dtype = torch.float32) -> Tensor:
    """Loss weight of every pair ``(B, P, R)`` in ``dtype``; each task's weights sum to 1.

    ``same``: bool ``(B, P, R)``, the pair shows one class; ``valid``: bool, broadcastable to it, the
    pair counts. With ``balance`` the same-class pairs share half of the weight and the
    different-class pairs the other half (an N-way episode has N - 1 times more different pairs);
    without it every valid pair weighs the same. A group with no pair (a 1-way episode has no
    different pair) gets no weight.
    """
    valid = valid.expand_as(same)
    dims = tuple(range(1, same.dim()))

    def share(mask: Tensor) -> Tensor:
        mask = mask.to(dtype)
        return mask / mask.sum(dims, keepdim=True).clamp(min=1)

    if not balance:
        return share(valid)
    return 0.5 * share(same & valid) + 0.5 * share(~same & valid)


class SiameseNet(Algorithm):
    """Siamese networks: a learned weighted L1 similarity between twin embeddings, trained on pairs.

    **Training pairs.** Every episode gives its pairs in one tensor op, no loop. ``pairs="query-support"``
    compares every query item with every support item (the comparisons made at test time):
    ``Q * S`` pairs, of which ``Q * K`` show the same class. ``pairs="all"`` takes every unordered
    pair of distinct items among support and query (support-support and query-query too), which
    gives more same-class pairs per episode. The pair label is 1 when both items have the same label.
    An N-way episode has about N - 1 different-class pairs per same-class pair, so with ``balance``
    (default) the binary cross-entropy weighs both groups equally, as Koch's balanced verification
    pairs do; each task weighs the same in the batch mean.

    **Prediction.** The score of class c for a query is its similarity logit with c's K support
    items, reduced by ``class_score``: ``"max"`` (default) takes the most similar support item
    (Koch's one-shot rule, nearest neighbour under the learned similarity); ``"mean"`` averages the
    logits (log-odds). At 1 shot both are the same. Scores are logits, not probabilities, so
    saturated sigmoids cannot tie the evaluator's argmax.

    Support and query items of a task go through the encoder together, one call per task
    (``per_task``), so BatchNorm statistics are per task and never mix tasks.

    Args:
        model: the twin encoder ``(n, ...) -> (n, D)``; any trailing shape is flattened to D.
        in_shape: shape of one input item, used once to read D off ``model``; default ``(in_features,)``
            for a first ``nn.Linear``, ``(in_channels, 28, 28)`` for a first ``nn.Conv2d``.
        class_score: ``"max"`` or ``"mean"`` over a class's support items (see above).
        pairs: ``"query-support"`` or ``"all"`` training pairs (see above).
        balance: weigh same- and different-class pairs equally in the loss.

    Returns (forward): class scores ``(B, Q, ways)``, same-class logits; ``meta_loss`` is the pair
    binary cross-entropy, with these scores as its predictions.

    Example:
        >>> siamese = SiameseNet(Conv4())                  # 64-d embeddings at 28x28
        >>> siamese.meta_loss(batch).loss.backward()        # batch: Task of (B, ...) tensors
    """

    needs_head = False
    freezable = True

    def __init__(
        self,
        model: nn.Module,
        in_shape: tuple[int, ...] | None = None,
        class_score: str = "max",
        pairs: str = "query-support",
        balance: bool = True,
    ) -> None:
        super().__init__(loss="cross_entropy")  # unused: the pair loss is binary cross-entropy, below
        if class_score not in CLASS_SCORES:
            raise ValueError(f"unknown class_score {class_score!r}; choose one of {CLASS_SCORES}")
        if pairs not in PAIRS:
            raise ValueError(f"unknown pairs {pairs!r}; choose one of {PAIRS}")
        self.model, self.class_score, self.pairs, self.balance = model, class_score, pairs, balance
        dim = math.prod(output_shape(model, in_shape))
        # Koch's last layer: weights on |z1 - z2| and a bias, then a sigmoid (applied in the loss)
        self.distance = like_model(nn.Linear(dim, 1), model)

    def embed(self, batch: Task) -> Tensor:
        """Support then query embeddings of every task, ``(B, S+Q, D)``; one encoder call per task."""
        check_batch(batch)
        return per_task(self.model, torch.cat([batch.support_x, batch.query_x], dim=1)).flatten(2)

    def class_scores(self, query_support: Tensor, support_y: Tensor, ways: int) -> Tensor:
        """Pair logits ``(B, Q, S)`` -> class scores ``(B, Q, ways)`` (max or mean over each class's support items)."""
        in_class = F.one_hot(support_y, ways).to(query_support.dtype)  # (B, S, N)
        if self.class_score == "mean":
            return query_support @ in_class / in_class.sum(1, keepdim=True)
        masked = query_support.unsqueeze(-1).masked_fill(in_class.unsqueeze(1) == 0, -math.inf)  # (B, Q, S, N)
        return masked.amax(dim=2)

    def forward(self, batch: Task) -> Tensor:
        s = batch.support_x.shape[1]
        z = self.embed(batch)
        logits = weighted_l1_logits(z[:, s:], z[:, :s], self.distance)  # (B, Q, S)
        return self.class_scores(logits, batch.support_y, int(batch.support_y.max()) + 1)

    def meta_loss(self, batch: Task, generator: torch.Generator | None = None) -> MetaOutput:
        """Balanced binary cross-entropy over the episode's same/different pairs (see the class docstring)."""
        s = batch.support_x.shape[1]
        z = self.embed(batch)  # (B, S+Q, D)
        if self.pairs == "query-support":
            logits = weighted_l1_logits(z[:, s:], z[:, :s], self.distance)  # (B, Q, S)
            same = batch.query_y.unsqueeze(2) == batch.support_y.unsqueeze(1)
            valid = torch.ones_like(same)
            query_support = logits
        else:
            logits = weighted_l1_logits(z, z, self.distance)  # (B, M, M), M = S+Q
            y = torch.cat([batch.support_y, batch.query_y], dim=1)
            same = y.unsqueeze(2) == y.unsqueeze(1)
            m = y.shape[1]
            valid = torch.ones(m, m, dtype=torch.bool, device=y.device).triu(1).unsqueeze(0)  # each unordered pair once
            query_support = logits[:, s:, :s]
        weights = pair_weights(same, valid, self.balance, logits.dtype)
        bce = F.binary_cross_entropy_with_logits(logits, same.to(logits.dtype), reduction="none")
        loss = (weights * bce).sum() / batch.batch_size
        scores = self.class_scores(query_support, batch.support_y, int(batch.support_y.max()) + 1)
        return MetaOutput(loss, scores.detach())
