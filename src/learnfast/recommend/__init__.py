"""Cold-start recommendation: rating metrics, the baselines a recommender team tries first, per-scenario reports.

A core-layer package (torch, ``data``, ``models``, ``inner``, ``protocol``): algorithms and the
training harness use it; it never imports them.
"""
from .baselines import fit_baselines
from .metrics import mae, ndcg_at, rmse
from .report import cold_start_report

__all__ = ["cold_start_report", "fit_baselines", "mae", "ndcg_at", "rmse"]
