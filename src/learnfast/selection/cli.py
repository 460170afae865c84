"""``learnfast select DATA.csv --label COL``: rank learning strategies for a new data set; ``--run`` races them.

The ranking comes from a knowledge base (``--kb``, default the collection's, shipped as
``docs/selection/kb.sqlite.xz``), read-only. ``--run`` carries out the loop (:mod:`.loop`) and records its
results in ``--record`` (default ``selection-kb.sqlite``; created as a copy of ``--kb`` the first time,
so the shipped file is never written, and a rerun resumes from it).
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

from ..train.arguments import at_least

DEFAULT_KB = "docs/selection/kb.sqlite.xz"
MIN_ROWS = 20


def add_select_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``select`` command to the ``learnfast`` sub-parsers."""
    select = subparsers.add_parser("select", help="rank learning strategies for a tabular data set from a knowledge base; --run races the top ones",
                                   description="Rank scikit-learn strategies for a CSV classification data set by what worked on "
                                   "similar data sets (needs `pip install learnfast[select]`).")
    select.add_argument("data", help="a CSV file (UTF-8, header row) with a label column")
    select.add_argument("--label", required=True, help="the column to predict (a class label)")
    select.add_argument("--kb", default=DEFAULT_KB, help=f"knowledge base to learn from (default {DEFAULT_KB})")
    select.add_argument("--recommender", default="meta-model", choices=("meta-model", "knn", "average-rank", "single-best"),
                        help="how to rank (default meta-model)")
    select.add_argument("--top", type=at_least(1), default=10, help="how many strategies to print (default 10)")
    select.add_argument("--run", action="store_true", help="race the top strategies on the data (successive halving on 5 CV folds), "
                        "record them and re-rank")
    select.add_argument("--rounds", type=at_least(1), default=2, help="with --run: rounds of rank, race, record (default 2)")
    select.add_argument("--per-round", type=at_least(1), default=4, help="with --run: strategies raced per round (default 4)")
    select.add_argument("--record", default="selection-kb.sqlite",
                        help="with --run: knowledge base the results go to (created as a copy of --kb; default ./selection-kb.sqlite)")
    select.add_argument("--seed", type=int, default=0, help="seed of the CV folds and meta-feature subsamples")
    select.add_argument("--json", action="store_true", help="print one JSON object")
    select.set_defaults(func=cmd_select)
    return select


def read_task(path: str, label: str, seed: int = 0):
    """The CSV as a :class:`~.collection.TabularTask` (all rows), or a ValueError saying what is wrong."""
    import pandas as pd

    from .collection import N_FOLDS, prepare

    if not Path(path).is_file():
        raise FileNotFoundError(f"no file {path}")
    try:
        frame = pd.read_csv(path, encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path} is not UTF-8 text (byte {err.start}); re-save it as UTF-8 CSV") from None
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as err:
        raise ValueError(f"{path} is not a readable CSV: {str(err).splitlines()[0]}") from None
    if label not in frame.columns:
        raise ValueError(f"{path} has no column {label!r}; its columns are: {', '.join(map(str, frame.columns))}")
    labelled = int(frame[label].notna().sum())
    if labelled < MIN_ROWS:
        raise ValueError(f"{path} has {labelled} rows with a {label!r} value; selection needs at least {MIN_ROWS}")
    task = prepare(frame, label, name="", source=f"csv {path} label={label}", min_class_rows=N_FOLDS, seed=seed)
    # the same data set gets the same name (a rerun resumes); another file of the same name does not
    digest = hashlib.sha256(np.ascontiguousarray(task.x).tobytes() + task.y.tobytes()).hexdigest()[:12]
    return dataclasses.replace(task, name=f"csv:{Path(path).name}:{digest}")


def cmd_select(args: argparse.Namespace) -> int:
    try:
        import pandas  # noqa: F401
        import sklearn  # noqa: F401
    except ImportError as err:
        raise ValueError(f"learnfast select needs the [select] extra ({err.name} is missing): pip install 'learnfast[select]'") from None
    from threadpoolctl import threadpool_limits

    from .kb import KnowledgeBase
    from .metafeatures import meta_features
    from .recommenders import RECOMMENDERS

    threadpool_limits(1)
    if not Path(args.kb).is_file():
        raise FileNotFoundError(f"no knowledge base at {args.kb}; pass --kb PATH (build one with "
                                "`python -m learnfast.selection.collection --kb PATH`)")
    task = read_task(args.data, args.label, args.seed)
    make = RECOMMENDERS[args.recommender]
    report = {"data": args.data, "rows": len(task.y), "features": task.x.shape[1], "classes": list(task.classes),
              "recommender": args.recommender, "kb": args.kb}
    if not args.run:
        with KnowledgeBase(args.kb, readonly=True) as kb:
            recommender = make().fit(kb)
        mf = meta_features(task.x, task.y, seed=args.seed)
        report["ranking"] = [{"strategy": s.key, "predicted_score": round(p, 4)} for s, p in recommender.rank(mf)[: args.top]]
    else:
        from .loop import select_and_run

        record = Path(args.record)
        if not record.exists():
            import sqlite3

            with KnowledgeBase(args.kb, readonly=True) as src:
                copy = sqlite3.connect(record)
                src._conn.backup(copy)
                copy.close()
        with KnowledgeBase(record) as kb:
            result = select_and_run(task.x, task.y, kb, make(), task.name, rounds=args.rounds, per_round=args.per_round,
                                    seed=args.seed, source=task.source, log=None if args.json else sys.stdout)
            final = make().fit(kb).rank(result.meta_features)
        report["record"] = str(record)
        report["trials"] = [{"strategy": t.strategy.key, "cv_score": round(t.score, 4), "folds": t.folds_done,
                             "seconds": round(t.seconds, 2)} for t in result.trials]
        best = result.best
        report["best"] = None if best is None else {"strategy": best.strategy.key, "cv_score": round(best.score, 4)}
        measured = {t.strategy.key: t for t in result.trials}
        report["ranking"] = [{"strategy": s.key, "predicted_score": round(p, 4)} for s, p in final[: args.top]]
        for row in report["ranking"]:
            if row["strategy"] in measured:
                row["measured_score"], row["folds"] = round(measured[row["strategy"]].score, 4), measured[row["strategy"]].folds_done
    if args.json:
        print(json.dumps(report))
        return 0
    where = f"{args.record}, re-ranked after the runs" if args.run else args.kb
    print(f"{args.data}: {report['rows']} rows, {report['features']} features, {len(task.classes)} classes; "
          f"{args.recommender} ranking from {where}:")
    width = max(len(r["strategy"]) for r in report["ranking"])
    for i, r in enumerate(report["ranking"], 1):
        seen = f", measured {r['measured_score']:.3f} on {r['folds']} folds" if "measured_score" in r else ""
        print(f"{i:3d}. {r['strategy']:{width}s}  predicted balanced accuracy {r['predicted_score']:.3f}{seen}")
    if args.run and report["best"]:
        print(f"best measured: {report['best']['strategy']}  5-fold CV balanced accuracy {report['best']['cv_score']:.4f} "
              f"(results in {record})")
    return 0
