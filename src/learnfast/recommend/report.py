"""Per-scenario evaluation over test users: MAE, RMSE, nDCG@1, nDCG@3, each mean ± 95% CI over users.

Every test user with at least ``shots + queries`` ratings in a scenario is one task, drawn from
its own generator (``learnfast.protocol.episode_generator(seed, position)``), so each method sees
the same support and query sets. Per-user MAE / RMSE / nDCG are averaged over users with
``learnfast.protocol.EvalResult`` (1.96 std / sqrt(users)).
"""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from ..data.cold_start import SCENARIOS, ColdStartSplit, ColdStartTasks
from ..protocol import EvalResult, episode_generator
from ..tasks import Task
from .baselines import Predictor
from .metrics import user_metrics

METRICS = ("mae", "rmse", "ndcg@1", "ndcg@3")


def scenario_tasks(split: ColdStartSplit, scenario: str, shots: int, queries: int, seed: int, part: str = "test") -> list[Task]:
    """The fixed task of every eligible user of ``part`` in ``scenario`` (empty when none qualifies)."""
    try:
        source = ColdStartTasks(split, part, scenario, shots, queries)
    except ValueError:
        return []
    return [source.user_task(i, episode_generator(seed, i)) for i in range(len(source))]


def score(predictor: Predictor, tasks: list[Task]) -> dict[str, float | None]:
    """``{metric: mean, metric_ci95: half-width}`` over the tasks' users (``None`` rating errors for ranking-only methods)."""
    with torch.no_grad():
        rows = [user_metrics(predictor.predict(t), t.query_y.flatten(), predictor.ranks_only) for t in tasks]
    out: dict[str, float | None] = {}
    for metric in METRICS:
        if predictor.ranks_only and metric in ("mae", "rmse"):
            out[metric], out[metric + "_ci95"] = None, None
            continue
        result = EvalResult(metric, torch.tensor([r[metric] for r in rows], dtype=torch.float64))
        out[metric], out[metric + "_ci95"] = result.mean, result.ci95
    return out


def algorithm_predictor(algorithm: Callable[[Task], Tensor]) -> Predictor:
    """A learnfast algorithm (``algorithm(batch) -> (B, Q, 1)``) as a per-task predictor."""
    return Predictor(lambda task: algorithm(task.unsqueeze())[0, :, 0])


def cold_start_report(predictors: dict[str, Predictor], split: ColdStartSplit, shots: int, queries: int, seed: int = 0,
                      scenarios: tuple[str, ...] = SCENARIOS, part: str = "test") -> dict[str, Any]:
    """``{scenario: {"users": n, "methods": {name: {metric: mean, metric_ci95: ci, ...}}}}`` over ``part``'s users.

    A scenario without an eligible user reports ``"users": 0`` and no methods.
    """
    report: dict[str, Any] = {}
    for scenario in scenarios:
        tasks = scenario_tasks(split, scenario, shots, queries, seed, part)
        methods = {name: {**score(p, tasks), **({"setting": p.setting} if p.setting else {})} for name, p in predictors.items()} if tasks else {}
        report[scenario] = {"users": len(tasks), "methods": methods}
    return report


def format_report(report: dict[str, Any], shots: int) -> str:
    """A plain-text table per scenario: method, MAE, RMSE, nDCG@1, nDCG@3 (± 95% CI)."""
    lines = []
    for scenario, entry in report.items():
        lines.append(f"{scenario} (K = {shots}, {entry['users']} users)")
        for name, m in entry["methods"].items():
            cells = "  ".join(f"{metric} {m[metric]:.4f} ± {m[metric + '_ci95']:.4f}" for metric in METRICS if m[metric] is not None)
            lines.append(f"  {name:22s} {cells}" + (f"  [{m['setting']}]" if "setting" in m else ""))
    return "\n".join(lines)
