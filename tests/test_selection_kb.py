"""The SQLite knowledge base: round trip, merge across machines, read-only use, and a writer killed mid-write."""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

pytest.importorskip("sklearn")

from conftest import REPO_ROOT  # noqa: E402
from learnfast.selection.kb import KnowledgeBase, KnowledgeBaseError, Strategy, export, merge  # noqa: E402

KNN = Strategy("knn", {"n_neighbors": 5})
TREE = Strategy("tree", {"max_depth": None, "random_state": 0})


def test_round_trip(tmp_path):
    with KnowledgeBase(tmp_path / "kb.sqlite") as kb:
        kb.add_result("iris", KNN, score=0.9, seconds=0.5, metric="acc", folds_done=5, folds_total=5,
                      info={"fold_scores": [0.9] * 5}, meta_features={"rows": 150.0}, source="test")
        kb.add_result("iris", TREE, score=0.8, seconds=0.1, metric="acc", folds_done=1, folds_total=5)
    with KnowledgeBase(tmp_path / "kb.sqlite") as kb:
        assert kb.tasks() == {"iris": {"rows": 150.0}}
        assert kb.strategies() == [KNN, TREE] and kb.strategies()[1].params == {"max_depth": None, "random_state": 0}
        assert [(r.task, r.strategy, r.score, r.info) for r in kb.results()][0] == ("iris", KNN, 0.9, {"fold_scores": [0.9] * 5})
        assert kb.completed("acc") == {("iris", KNN.key)}  # the 1-fold result is partial


def test_strategy_key_is_canonical():
    assert Strategy("svc", {"kernel": "rbf", "C": 1.0}).key == 'svc {"C": 1.0, "kernel": "rbf"}'
    assert Strategy.from_key(KNN.key) == KNN and hash(Strategy("knn", {"n_neighbors": 5})) == hash(KNN)


def test_merge_from_two_machines_is_idempotent(tmp_path):
    a, b, into = tmp_path / "a.sqlite", tmp_path / "b.sqlite", tmp_path / "all.sqlite"
    with KnowledgeBase(a) as kb:
        kb.add_result("iris", KNN, score=0.9, seconds=1, metric="acc", meta_features={"rows": 150.0})
        kb.add_result("wine", KNN, score=0.7, seconds=1, metric="acc")
        kb.add_task("empty", {"rows": 3.0})
    with KnowledgeBase(b) as kb:
        kb.add_result("iris", TREE, score=0.8, seconds=1, metric="acc", meta_features={"rows": 150.0})
        kb.add_result("wine", KNN, score=0.75, seconds=1, metric="acc")  # a second measurement: both kept
    assert merge(into, [a, b]) == 4
    assert merge(into, [a, b]) == 0
    with KnowledgeBase(into) as kb:
        rows = sorted((r.task, r.strategy.learner, r.score) for r in kb.results())
        assert rows == [("iris", "knn", 0.9), ("iris", "tree", 0.8), ("wine", "knn", 0.7), ("wine", "knn", 0.75)]
        assert set(kb.tasks()) == {"iris", "wine", "empty"} and kb.tasks()["iris"] == {"rows": 150.0}


def test_readonly_and_export(tmp_path):
    with KnowledgeBase(tmp_path / "kb.sqlite") as kb:
        kb.add_result("iris", KNN, score=0.9, seconds=1, metric="acc", folds_done=5, folds_total=5, info={"big": "x" * 1000})
        kb.add_result("iris", TREE, score=0.5, seconds=1, metric="acc", folds_done=2, folds_total=5)
    assert export(tmp_path / "kb.sqlite", tmp_path / "small.sqlite", "acc") == 1
    before = sorted(os.listdir(tmp_path))
    with KnowledgeBase(tmp_path / "small.sqlite", readonly=True) as kb:
        assert [(r.strategy, r.score, r.info) for r in kb.results()] == [(KNN, 0.9, {})]
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            kb._conn.execute("DELETE FROM results")
    assert sorted(os.listdir(tmp_path)) == before  # no -wal / -shm files next to a shipped file
    assert export(tmp_path / "kb.sqlite", tmp_path / "small.sqlite.xz", "acc") == 1
    assert not list(tmp_path.glob("tmp*"))  # the uncompressed temporary file is gone
    with KnowledgeBase(tmp_path / "small.sqlite.xz", readonly=True) as kb:
        assert [(r.strategy, r.score) for r in kb.results()] == [(KNN, 0.9)]
    with pytest.raises(FileExistsError):
        export(tmp_path / "kb.sqlite", tmp_path / "small.sqlite.xz", "acc")
    (tmp_path / "bad.sqlite.xz").write_bytes(b"nope")
    with pytest.raises(KnowledgeBaseError, match="not an xz-compressed"):
        KnowledgeBase(tmp_path / "bad.sqlite.xz", readonly=True)


@pytest.mark.parametrize("content, message", [(b"not a database at all" * 100, "not a learnfast knowledge base"), (None, "without the knowledge-base tables")])
def test_foreign_files_are_clear_errors(tmp_path, content, message):
    path = tmp_path / "x.sqlite"
    if content is None:
        sqlite3.connect(path).execute("CREATE TABLE other (a)").connection.close()
    else:
        path.write_bytes(content)
    with pytest.raises(KnowledgeBaseError, match=message):
        KnowledgeBase(path)
    with pytest.raises(KnowledgeBaseError, match="is a folder"):
        KnowledgeBase(tmp_path)
    with pytest.raises(FileNotFoundError, match="no knowledge base"):
        KnowledgeBase(tmp_path / "missing.sqlite", readonly=True)


WRITER = textwrap.dedent("""
    import sys
    from learnfast.selection.kb import KnowledgeBase, Strategy
    kb = KnowledgeBase(sys.argv[1])
    for i in range(10**6):
        kb.add_result(f"task{i % 50}", Strategy("knn", {"n_neighbors": i % 7 + 1}), score=float(i), seconds=0.0,
                      metric="acc", info={"i": i, "pad": "x" * 2000}, meta_features={"rows": float(i)})
""")


def test_writer_killed_mid_write_leaves_a_readable_file(tmp_path):
    path = tmp_path / "kb.sqlite"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")}
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], env=env)
    try:
        deadline = time.monotonic() + 60
        count = 0
        while count < 150 and time.monotonic() < deadline:
            time.sleep(0.05)
            if path.exists():
                try:
                    with KnowledgeBase(path, readonly=True) as kb:
                        count = kb.count()
                except (sqlite3.OperationalError, KnowledgeBaseError):
                    pass  # not created yet
        assert count >= 150, "the writer did not get going"
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    assert writer.returncode == -signal.SIGKILL
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    with KnowledgeBase(path) as kb:
        results = kb.results()
        assert len(results) >= count
        assert [r.score for r in results] == [float(i) for i in range(len(results))]  # earlier rows intact, in order
        assert [r.info["i"] for r in results] == list(range(len(results)))
        kb.add_result("after", KNN, score=1.0, seconds=0.0, metric="acc")  # and it can be written again
        assert json.loads(json.dumps(kb.tasks()["task1"]))["rows"] >= 1.0
