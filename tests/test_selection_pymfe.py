"""pymfe meta-features, an optional extra: finite, deterministic, prefixed; a clear error without pymfe."""
import sys

import numpy as np
import pytest

from learnfast.selection.pymfe_features import pymfe_features


def table(rows=60, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 4))
    x[:, 2] = 1.0  # a constant column
    x[::7, 0] = np.nan  # missing values
    x[3, 1] = np.inf
    y = (x[:, 1] > 0).astype(int) + (rng.uniform(size=rows) > 0.7)
    return x, y


def test_pymfe_features_are_finite_deterministic_and_prefixed():
    pytest.importorskip("pymfe")
    x, y = table()
    first, second = pymfe_features(x, y), pymfe_features(x, y)
    assert first == second and len(first) > 20
    assert all(name.startswith("pymfe.") for name in first) and all(np.isfinite(list(first.values())))
    assert first["pymfe.nr_inst"] == 60 and first["pymfe.nr_class"] == 3
    assert pymfe_features(np.vstack([x] * 50), np.concatenate([y] * 50), max_rows=100)["pymfe.nr_inst"] == 100  # bounded
    with pytest.raises(ValueError, match="at least 2 classes"):
        pymfe_features(x, np.zeros(len(x)))


def test_pymfe_missing_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pymfe", None)  # as if pymfe were not installed
    monkeypatch.setitem(sys.modules, "pymfe.mfe", None)
    with pytest.raises(ImportError, match=r"pip install 'learnfast\[pymfe\]'"):
        pymfe_features(*table())
