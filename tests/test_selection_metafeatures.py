"""Tabular meta-features: finite and deterministic on edge cases, clear errors where nothing is defined."""
import time

import numpy as np
import pytest

pytest.importorskip("sklearn")

from learnfast.selection.metafeatures import NAMES, meta_features  # noqa: E402


def blobs(rows=200, features=5, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(rows) % classes
    return rng.normal(size=(rows, features)) + y[:, None], y


def check(mf):
    assert list(mf) == list(NAMES)
    assert all(isinstance(v, float) and np.isfinite(v) for v in mf.values()), mf


def test_values_on_a_known_table():
    x, y = blobs()
    mf = meta_features(x, y)
    check(mf)
    assert mf["rows"] == 200 and mf["features"] == 5 and mf["classes"] == 3
    assert mf["class_entropy"] == pytest.approx(np.log2(3), abs=1e-3) and mf["norm_class_entropy"] == pytest.approx(1, abs=1e-3)
    assert abs(mf["skew_mean"]) < 0.5 and mf["frac_missing"] == 0 and mf["frac_constant_features"] == 0
    assert 0.5 < mf["landmark_naive_bayes"] <= 1 and mf["mutual_info_mean"] > 0.1


def test_deterministic_and_label_type_free():
    x, y = blobs()
    assert meta_features(x, y) == meta_features(x.copy(), y.copy())
    assert meta_features(x, y) == meta_features(x, np.array(["a", "b", "c"])[y])


def test_one_class_is_an_error():
    x, _ = blobs()
    with pytest.raises(ValueError, match="at least 2 classes"):
        meta_features(x, np.zeros(len(x)))


@pytest.mark.parametrize("shape", [(0, 3), (5, 0)])
def test_empty_tables_are_errors(shape):
    with pytest.raises(ValueError, match="at least one row and one column"):
        meta_features(np.zeros(shape), np.arange(shape[0]) % 2)


def test_mismatched_lengths():
    with pytest.raises(ValueError, match="5 rows of features but 4 labels"):
        meta_features(np.zeros((5, 2)), np.array([0, 1, 0, 1]))


def test_constant_column():
    x, y = blobs()
    x[:, 2] = 7.0
    mf = meta_features(x, y)
    check(mf)
    assert mf["frac_constant_features"] == pytest.approx(0.2)
    only_constant = meta_features(np.full((50, 2), 3.0), np.arange(50) % 2)
    check(only_constant)
    assert only_constant["skew_mean"] == 0 and only_constant["mutual_info_max"] == 0 and only_constant["frac_constant_features"] == 1


def test_missing_values():
    x, y = blobs()
    x[::3, 0] = np.nan
    x[:, 4] = np.nan  # an all-missing column
    mf = meta_features(x, y)
    check(mf)
    assert mf["frac_missing"] == pytest.approx((67 + 200) / 1000)
    assert mf == meta_features(x, y)


@pytest.mark.parametrize("y", [[0, 0, 1], [0, 1, 2]])
def test_three_rows(y):
    x = np.array([[0.0, 1.0], [1.0, np.nan], [5.0, 2.0]])
    check(meta_features(x, np.array(y)))


def test_bounded_time_on_a_large_table():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(20000, 1000)), rng.integers(0, 10, 20000)
    start = time.perf_counter()
    check(meta_features(x, y))
    assert time.perf_counter() - start < 10  # subsampled to 2000 rows x 100 columns, landmarkers on 500


def test_infinities_count_as_missing():
    x, y = blobs()
    x[0, 0], x[1, 1] = np.inf, -np.inf
    expected = x.copy()
    expected[0, 0] = expected[1, 1] = np.nan
    assert meta_features(x, y) == meta_features(expected, y) and np.isinf(x[0, 0])  # the input is not changed
