"""``learnfast select``: the ranking from a knowledge base, ``--run``'s loop, and one-line errors."""
import argparse
import hashlib
import json

import numpy as np
import pytest

pytest.importorskip("sklearn")
pd = pytest.importorskip("pandas")

from learnfast.selection.cli import add_select_parser, read_task  # noqa: E402
from learnfast.selection.kb import KnowledgeBase, Strategy  # noqa: E402
from learnfast.selection.metafeatures import meta_features  # noqa: E402

STRATEGIES = (Strategy("naive_bayes", {}), Strategy("tree", {"max_depth": 2, "random_state": 0}), Strategy("knn", {"n_neighbors": 5}))


def run(argv):
    parser = argparse.ArgumentParser(prog="learnfast")
    add_select_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture
def kb_path(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "kb.sqlite"
    with KnowledgeBase(path) as kb:
        for i in range(6):
            x, y = rng.normal(size=(60 + 10 * i, 3)), np.arange(60 + 10 * i) % 2
            for strategy, score in zip(STRATEGIES, (0.6, 0.7 + 0.01 * i, 0.65)):
                kb.add_result(f"t{i}", strategy, score=score, seconds=0.1, metric="balanced_accuracy", folds_done=5,
                              folds_total=5, meta_features=meta_features(x, y))
    return path


@pytest.fixture
def csv_path(tmp_path):
    from sklearn.datasets import load_iris

    iris = load_iris(as_frame=True).frame
    iris["target"] = np.array(["setosa", "versicolor", "virginica"])[iris["target"]]
    path = tmp_path / "iris.csv"
    iris.to_csv(path, index=False)
    return path


def test_ranking_from_a_knowledge_base(kb_path, csv_path, capsys):
    digest = hashlib.sha256(kb_path.read_bytes()).hexdigest()
    assert run(["select", str(csv_path), "--label", "target", "--kb", str(kb_path), "--recommender", "single-best"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "150 rows, 4 features, 3 classes" in lines[0]
    assert lines[1].split()[1] == "tree" and "predicted balanced accuracy 0.725" in lines[1] and len(lines) == 4
    assert run(["select", str(csv_path), "--label", "target", "--kb", str(kb_path), "--json", "--top", "2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["rows"] == 150 and len(report["ranking"]) == 2 and report["recommender"] == "meta-model"
    assert hashlib.sha256(kb_path.read_bytes()).hexdigest() == digest  # read-only


def test_run_races_records_and_leaves_the_source_kb_alone(kb_path, csv_path, tmp_path, capsys):
    digest = hashlib.sha256(kb_path.read_bytes()).hexdigest()
    record = tmp_path / "mine.sqlite"
    argv = ["select", str(csv_path), "--label", "target", "--kb", str(kb_path), "--run", "--rounds", "2", "--per-round", "2",
            "--record", str(record), "--json", "--recommender", "knn"]
    assert run(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["trials"]) == 3 and report["best"]["cv_score"] > 0.9
    assert hashlib.sha256(kb_path.read_bytes()).hexdigest() == digest
    with KnowledgeBase(record) as kb:
        assert any(name.startswith("csv:iris.csv:") for name in kb.tasks()) and kb.count() == 18 + 3
    assert run(argv) == 0  # a rerun resumes: everything was tried, nothing is raced again
    assert json.loads(capsys.readouterr().out)["trials"] == []


def test_bad_inputs_are_clear_errors(tmp_path, kb_path, csv_path):
    with pytest.raises(ValueError, match="has no column 'species'; its columns are: sepal length"):
        read_task(str(csv_path), "species")
    latin = tmp_path / "latin.csv"
    latin.write_bytes("name,label\n".encode() + "caf\xe9,a\n".encode("latin-1") * 30)
    with pytest.raises(ValueError, match="is not UTF-8 text .* re-save it as UTF-8"):
        read_task(str(latin), "label")
    few = tmp_path / "few.csv"
    few.write_text("x,label\n" + "".join(f"{i},{i % 2}\n" for i in range(10)))
    with pytest.raises(ValueError, match="has 10 rows with a 'label' value; selection needs at least 20"):
        read_task(str(few), "label")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValueError, match="is not a readable CSV"):
        read_task(str(empty), "label")
    with pytest.raises(FileNotFoundError, match="no file"):
        read_task(str(tmp_path / "missing.csv"), "label")
    with pytest.raises(FileNotFoundError, match="no knowledge base at .*; pass --kb PATH"):
        run(["select", str(csv_path), "--label", "target", "--kb", str(tmp_path / "none.sqlite")])
    with pytest.raises(SystemExit):
        run(["select", str(csv_path), "--label", "target", "--top", "0"])


def test_learnfast_main_prints_one_line_errors(tmp_path, csv_path, capsys):
    from learnfast.cli import build_parser, main

    if "select" not in build_parser()._subparsers._group_actions[0].choices:
        pytest.skip("`learnfast select` is not registered in learnfast/cli.py yet")
    for argv, message in [
        (["select", str(csv_path), "--label", "species", "--kb", str(tmp_path / "none.sqlite")], "no knowledge base at"),
        (["select", str(tmp_path / "nope.csv"), "--label", "y", "--kb", str(csv_path)], "no file"),
    ]:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("learnfast select: error: ") and message in err
