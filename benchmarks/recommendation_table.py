"""The cold-start table of docs/recommendation.md: MeLU checkpoints beside every baseline, per scenario, at one K.

    LEARNFAST_DATA=../shared/data python benchmarks/recommendation_table.py \
        zoo/melu-ml100k.safetensors runs/melu-ml100k-fo/best.safetensors runs/melu-ml100k-metasgd/best.safetensors \
        --shots 10 --json results/melu-k10.json

For one K, in one process: the baselines are fitted once (``learnfast.recommend.baselines``, settings
chosen on validation users), every checkpoint is scored on the same fixed test tasks
(``learnfast.recommend.report``), and each method's users adapted per second is timed over every
test task of the four scenarios, one user at a time (adaptation + prediction). The first checkpoint's
network is the global network's architecture. ``learnfast eval CKPT --shots K --json`` gives one
checkpoint's row and the baselines' rows of the same table.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from learnfast.recommend.baselines import fit_baselines
from learnfast.recommend.report import METRICS, algorithm_predictor, cold_start_report, format_report, scenario_tasks
from learnfast.train.build import movielens_split
from learnfast.train.restore import restore
from learnfast.data.cold_start import SCENARIOS


def users_per_second(predictor, tasks) -> float:
    start = time.perf_counter()
    with torch.no_grad():
        for task in tasks:
            predictor.predict(task)
    return len(tasks) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--shots", type=int, required=True, help="K support ratings per user")
    parser.add_argument("--queries", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0, help="the fixed test tasks (and the baselines' seed)")
    parser.add_argument("--data-root")
    parser.add_argument("--json", help="write the report here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    split = movielens_split(args.data_root)
    restored = {Path(c).parent.name if Path(c).name in ("best.safetensors", "last.safetensors") else Path(c).stem: restore(c)
                for c in args.checkpoints}
    start = time.perf_counter()
    baselines = fit_baselines(split, next(iter(restored.values())).algorithm.model, args.shots, args.queries, seed=args.seed)
    fit_seconds = time.perf_counter() - start
    predictors = {**{name: algorithm_predictor(r.algorithm) for name, r in restored.items()}, **baselines}
    report = cold_start_report(predictors, split, args.shots, args.queries, seed=args.seed)
    tasks = [t for s in SCENARIOS for t in scenario_tasks(split, s, args.shots, args.queries, args.seed)]
    speed = {name: users_per_second(predictors[name], tasks) for name in (*restored, "global + fine-tune", "MF fold-in")}
    out = {"shots": args.shots, "queries": args.queries, "seed": args.seed, "cold_start": report,
           "users_per_second": speed, "baseline_fit_seconds": fit_seconds, "timed_users": len(tasks),
           "train_seconds": {name: r.meta.get("train_seconds") for name, r in restored.items()},
           "iteration": {name: r.meta.get("iteration") for name, r in restored.items()}}
    print(format_report(report, args.shots))
    print("users adapted per second:", ", ".join(f"{k} {v:.0f}" for k, v in speed.items()))
    print("| scenario | method | " + " | ".join(METRICS) + " |")
    for scenario, entry in report.items():
        for name, m in entry["methods"].items():
            cells = " | ".join("—" if m[k] is None else f"{m[k]:.3f} ± {m[k + '_ci95']:.3f}" for k in METRICS)
            print(f"| {scenario} ({entry['users']}) | {name} | {cells} |")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
