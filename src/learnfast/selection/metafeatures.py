"""Tabular meta-features in bounded time: simple, statistical, information-theoretic and landmarkers.

Every value is a finite float, and the same data give the same values (every subsample is seeded).
Bounded cost: statistics use at most ``max_rows`` rows (a seeded subsample, 2000 by default) and
``max_features`` columns (a seeded choice, 100); landmarkers are 3-fold CV accuracies on at most
``landmark_rows`` rows (500). Edge cases have defined values: a constant column has skewness and
kurtosis 0 and mutual information 0; missing values are ignored by the statistics and imputed by
the column median for the landmarkers (0 for an all-missing column); with no varying column every
landmarker is the majority-class accuracy; 3 rows work. One class is an
error (nothing to classify), as are no rows or no columns.

References:
    Rivolli et al., "Meta-features for meta-learning", Knowledge-Based Systems 2022 (the groups);
    Pfahringer, Bensusan & Giraud-Carrier, "Meta-learning by landmarking various learning algorithms",
    ICML 2000 (landmarkers).

Example:
    >>> import numpy as np
    >>> x = np.array([[0.0, 1.0], [1.0, 1.0], [2.0, 1.0], [3.0, 1.0], [4.0, 1.0], [5.0, 1.0]])
    >>> mf = meta_features(x, y=np.array([0, 0, 0, 1, 1, 1]))
    >>> mf["rows"], mf["classes"], mf["class_entropy"], mf["frac_constant_features"]
    (6.0, 2.0, 1.0, 0.5)
    >>> len(mf) == len(NAMES) and all(np.isfinite(list(mf.values())))
    True
"""
from __future__ import annotations

import numpy as np

# The feature names, in the order :func:`meta_features` returns them.
SIMPLE = ("rows", "log_rows", "features", "log_features", "log_rows_per_feature", "classes", "frac_missing",
          "frac_constant_features", "frac_binary_features", "minority_class_frac", "majority_class_frac")
STATISTICAL = ("skew_mean", "skew_max_abs", "kurtosis_mean", "kurtosis_max", "abs_corr_mean", "cv_mean")
INFORMATION = ("class_entropy", "norm_class_entropy", "feature_entropy_mean", "mutual_info_mean", "mutual_info_max",
               "noise_signal_ratio")
LANDMARKERS = ("landmark_1nn", "landmark_stump", "landmark_naive_bayes")
NAMES = SIMPLE + STATISTICAL + INFORMATION + LANDMARKERS
BINS = 10  # equal-frequency bins for entropies and mutual information


def meta_features(x, y, *, seed: int = 0, max_rows: int = 2000, max_features: int = 100,
                  landmark_rows: int = 500) -> dict[str, float]:
    """The meta-features of a classification data set, as ``{name: finite float}`` (names in ``NAMES``).

    Args:
        x: ``(rows, features)`` numbers, NaN for missing (infinities count as missing; a DataFrame
            of numbers works).
        y: ``(rows,)`` class labels of any type; missing labels are not allowed.
        seed: seed of the subsamples and landmarker folds.
    """
    x, y = checked_table(x, y)  # a copy: infinities become missing values below
    counts = np.bincount(y)
    if len(counts) < 2:
        raise ValueError("meta-features need at least 2 classes; the label has only one value")
    x[np.isinf(x)] = np.nan
    rng = np.random.default_rng(seed)
    rows, features = x.shape
    out = {
        "rows": float(rows), "log_rows": float(np.log(rows)), "features": float(features),
        "log_features": float(np.log(features)), "log_rows_per_feature": float(np.log(rows / features)),
        "classes": float(len(counts)), "frac_missing": float(np.isnan(x).mean()),
    }
    if rows > max_rows:
        keep = np.sort(rng.choice(rows, max_rows, replace=False))
        x, y = x[keep], y[keep]
    if features > max_features:
        x = x[:, np.sort(rng.choice(features, max_features, replace=False))]
    constant = np.array([_n_distinct(col) <= 1 for col in x.T])
    binary = np.array([_n_distinct(col) == 2 for col in x.T])
    fractions = counts / counts.sum()
    out.update(frac_constant_features=float(constant.mean()), frac_binary_features=float(binary.mean()),
               minority_class_frac=float(fractions.min()), majority_class_frac=float(fractions.max()))
    out.update(_statistical(x[:, ~constant]))
    out.update(_information(x, y, constant))
    out.update(_landmarkers(x, y, rng, landmark_rows))
    return {name: _finite(out[name]) for name in NAMES}


def _n_distinct(col: np.ndarray) -> int:
    return len(np.unique(col[~np.isnan(col)]))


def _finite(value: float) -> float:
    return float(value) if np.isfinite(value) else 0.0


def _statistical(x: np.ndarray) -> dict[str, float]:
    """Moment summaries over non-constant columns (NaN ignored); 0 where there is no such column."""
    if x.shape[1] == 0:
        return dict.fromkeys(STATISTICAL, 0.0)
    mean = np.nanmean(x, axis=0)
    centred = x - mean
    std = np.sqrt(np.nanmean(centred**2, axis=0))
    z = centred / std
    skew = np.nanmean(z**3, axis=0)
    kurt = np.nanmean(z**4, axis=0) - 3.0
    filled = np.where(np.isnan(z), 0.0, z)  # mean-imputed, standardised
    if x.shape[1] > 1:
        corr = (filled.T @ filled) / len(filled)
        off = np.abs(corr[~np.eye(len(corr), dtype=bool)])
        abs_corr = float(np.clip(off, 0, 1).mean())
    else:
        abs_corr = 0.0
    cv = std / np.maximum(np.abs(mean), 1e-12)
    return {"skew_mean": float(skew.mean()), "skew_max_abs": float(np.abs(skew).max()), "kurtosis_mean": float(kurt.mean()),
            "kurtosis_max": float(kurt.max()), "abs_corr_mean": abs_corr, "cv_mean": float(np.log1p(cv).mean())}


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def _discretise(col: np.ndarray) -> np.ndarray:
    """Equal-frequency bins ``0..BINS-1``, missing values in their own bin ``BINS``."""
    out = np.full(len(col), BINS)
    seen = ~np.isnan(col)
    if seen.any():
        edges = np.unique(np.quantile(col[seen], np.linspace(0, 1, BINS + 1)[1:-1]))
        out[seen] = np.searchsorted(edges, col[seen], side="right")
    return out


def _information(x: np.ndarray, y: np.ndarray, constant: np.ndarray) -> dict[str, float]:
    n_classes = int(y.max()) + 1
    class_entropy = _entropy(np.bincount(y))
    feature_entropy, mutual_info = [], []
    for col, is_constant in zip(x.T, constant):
        if is_constant:
            feature_entropy.append(0.0)
            mutual_info.append(0.0)
            continue
        bins = _discretise(col)
        joint = np.bincount(bins * n_classes + y, minlength=(BINS + 1) * n_classes)
        h_x = _entropy(np.bincount(bins))
        feature_entropy.append(h_x)
        mutual_info.append(max(h_x + class_entropy - _entropy(joint), 0.0))
    mi_mean = float(np.mean(mutual_info))
    h_mean = float(np.mean(feature_entropy))
    return {"class_entropy": class_entropy, "norm_class_entropy": class_entropy / np.log2(n_classes),
            "feature_entropy_mean": h_mean, "mutual_info_mean": mi_mean, "mutual_info_max": float(np.max(mutual_info)),
            # (mean feature entropy - mean MI) / mean MI: how much of the features is unrelated to the class
            "noise_signal_ratio": float(np.log1p((h_mean - mi_mean) / mi_mean)) if mi_mean > 1e-12 else 0.0}


def _landmarkers(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, landmark_rows: int) -> dict[str, float]:
    """3-fold CV accuracy of 1-NN (standardised), a decision stump and Gaussian naive Bayes."""
    from sklearn.dummy import DummyClassifier
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.tree import DecisionTreeClassifier

    if len(x) > landmark_rows:
        keep = np.sort(rng.choice(len(x), landmark_rows, replace=False))
        x, y = x[keep], y[keep]
    missing = np.isnan(x)
    if missing.any():
        median = np.array([np.median(col[~gap]) if not gap.all() else 0.0 for col, gap in zip(x.T, missing.T)])
        x = np.where(missing, median, x)
    std = x.std(axis=0)
    x = ((x - x.mean(axis=0)) / np.where(std > 0, std, 1.0))[:, std > 0]  # constant columns say nothing
    folds = _folds(y, rng)
    learners = {"landmark_1nn": lambda: KNeighborsClassifier(n_neighbors=1),
                "landmark_stump": lambda: DecisionTreeClassifier(max_depth=1, random_state=0),
                "landmark_naive_bayes": lambda: GaussianNB()}
    if x.shape[1] == 0:  # nothing varies: every landmarker is the majority-class guess
        x = np.zeros((len(y), 1))
        learners = dict.fromkeys(learners, lambda: DummyClassifier(strategy="most_frequent"))
    out = {}
    for name, make in learners.items():
        hits = 0
        for test in folds:
            train = np.setdiff1d(np.arange(len(y)), test)
            hits += int((make().fit(x[train], y[train]).predict(x[test]) == y[test]).sum())
        out[name] = hits / len(y)
    return out


def _folds(y: np.ndarray, rng: np.random.Generator, k: int = 3) -> list[np.ndarray]:
    """Test indices of ``min(k, rows)`` folds, stratified by dealing each class's shuffled rows in turn."""
    k = min(k, len(y))
    order = np.concatenate([rng.permutation(np.flatnonzero(y == c)) for c in range(int(y.max()) + 1)])
    return [np.sort(order[i::k]) for i in range(k)]


def checked_table(x, y) -> tuple[np.ndarray, np.ndarray]:
    """``x`` as a float64 copy and ``y`` as class indices ``0..k-1``, or a ValueError naming what is wrong."""
    x = np.array(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"meta-features need a 2-d table with at least one row and one column, got shape {x.shape}")
    _, y = np.unique(np.asarray(y), return_inverse=True)
    y = y.reshape(-1)
    if len(y) != len(x):
        raise ValueError(f"{len(x)} rows of features but {len(y)} labels")
    return x, y
