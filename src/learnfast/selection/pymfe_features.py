"""Tabular meta-features from ``pymfe`` (an optional extra; the built-in :mod:`.metafeatures` always work).

:func:`pymfe_features` runs pymfe's extractor on the same bounded input as the built-in set (a
seeded subsample of at most ``max_rows`` rows; missing and infinite values replaced by the column
median, 0 for an all-missing column, since pymfe does not accept them) and returns its summarised
features as ``{"pymfe.NAME": float}``, dropping the values pymfe leaves undefined (NaN or inf, e.g.
a correlation on a constant column). Merge them into a task's meta-features to let a recommender use
them: ``{**meta_features(x, y), **pymfe_features(x, y)}``.

Install: ``pip install 'learnfast[pymfe]'``.

References:
    Alcobaça, Siqueira, Rivolli, Garcia, Oliva & de Carvalho (2020). MFE: Towards reproducible
    meta-feature extraction. JMLR 21(111).
"""
from __future__ import annotations

import warnings

import numpy as np

from .metafeatures import checked_table

GROUPS = ("general", "statistical", "info-theory")
SUMMARY = ("mean", "sd")


def pymfe_features(x, y, *, groups=GROUPS, summary=SUMMARY, seed: int = 0, max_rows: int = 2000) -> dict[str, float]:
    """pymfe's meta-features of a classification table, ``{"pymfe.NAME": finite float}`` (see the module docstring).

    Args:
        x: ``(rows, features)`` numbers, NaN for missing. y: ``(rows,)`` class labels, at least 2 classes.
        groups / summary: pymfe's meta-feature groups and summary functions.
        seed: seed of the row subsample and of pymfe's own randomness.
    """
    try:
        from pymfe.mfe import MFE
    except ImportError as err:
        raise ImportError("pymfe_features needs the pymfe extra: pip install 'learnfast[pymfe]'") from err
    x, y = checked_table(x, y)
    if len(np.unique(y)) < 2:
        raise ValueError("meta-features need at least 2 classes; the label has only one value")
    if len(x) > max_rows:
        keep = np.sort(np.random.default_rng(seed).choice(len(x), size=max_rows, replace=False))
        x, y = x[keep], y[keep]
    x[~np.isfinite(x)] = np.nan
    with warnings.catch_warnings():  # pymfe warns on every undefined value; those are dropped below
        warnings.simplefilter("ignore")
        medians = np.nan_to_num(np.nanmedian(np.where(np.isnan(x).all(0), 0.0, x), axis=0)) if np.isnan(x).any() else None
        if medians is not None:
            x = np.where(np.isnan(x), medians, x)
        mfe = MFE(groups=list(groups), summary=list(summary), random_state=seed)
        mfe.fit(x, y, suppress_warnings=True)
        names, values = mfe.extract(suppress_warnings=True)
    out = {}
    for name, value in zip(names, values):
        try:
            value = float(value)
        except (TypeError, ValueError):
            continue
        if np.isfinite(value):
            out[f"pymfe.{name}"] = value
    return out
