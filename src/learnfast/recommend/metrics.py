"""Rating metrics of one user's query set: MAE, RMSE and nDCG@k of the ranking by predicted rating.

nDCG as MeLU reports it (Lee et al. 2019, §4.2): the query items ranked by predicted rating,
gain ``2^r - 1`` of the true rating ``r``, discount ``log2(position + 1)``, divided by the DCG of
the ranking by true rating. Ties in the predictions keep the query order (a constant predictor
ranks the items as the query lists them, which is random).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor


def mae(predicted: Tensor, actual: Tensor) -> float:
    """Mean absolute error over the query ``(Q,)``."""
    return (predicted - actual).abs().mean().item()


def rmse(predicted: Tensor, actual: Tensor) -> float:
    """Root mean squared error over the query ``(Q,)``."""
    return (predicted - actual).pow(2).mean().sqrt().item()


def dcg(gains_in_order: Tensor, k: int) -> float:
    top = gains_in_order[:k].double()
    return (top / torch.log2(torch.arange(2, top.numel() + 2, dtype=torch.float64))).sum().item()


def ndcg_at(predicted: Tensor, actual: Tensor, k: int) -> float:
    """nDCG@k of ranking the query ``(Q,)`` by ``predicted``, graded by ``actual`` ratings; 1.0 when every gain is 0."""
    if k < 1:
        raise ValueError(f"nDCG@k needs k >= 1, got {k}")
    gains = torch.pow(2.0, actual.double()) - 1.0
    order = torch.sort(predicted, descending=True, stable=True).indices
    ideal = dcg(torch.sort(gains, descending=True).values, k)
    return dcg(gains[order], k) / ideal if ideal > 0 else 1.0


def user_metrics(predicted: Tensor, actual: Tensor, ranks_only: bool = False) -> dict[str, float]:
    """Every reported metric of one user: ``mae``, ``rmse`` (nan for a ranking-only method), ``ndcg@1``, ``ndcg@3``."""
    predicted, actual = predicted.flatten().double(), actual.flatten().double()
    errors = {"mae": math.nan, "rmse": math.nan} if ranks_only else {"mae": mae(predicted, actual), "rmse": rmse(predicted, actual)}
    return {**errors, "ndcg@1": ndcg_at(predicted, actual, 1), "ndcg@3": ndcg_at(predicted, actual, 3)}
