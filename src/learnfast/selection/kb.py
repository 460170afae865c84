"""The knowledge base: every evaluation of (task, strategy), in one SQLite file that survives a crash.

Schema (``PRAGMA user_version = 1``)::

    tasks       id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, source TEXT NOT NULL,
                meta_features TEXT NOT NULL   -- JSON object {feature name: float}, keys sorted
    strategies  id INTEGER PRIMARY KEY, learner TEXT NOT NULL, params TEXT NOT NULL,  -- JSON, keys sorted
                UNIQUE (learner, params)
    results     id INTEGER PRIMARY KEY, uid TEXT UNIQUE NOT NULL,  -- uuid4 hex: a merge copies a row once
                task_id INTEGER REFERENCES tasks, strategy_id INTEGER REFERENCES strategies,
                metric TEXT NOT NULL,        -- e.g. "balanced_accuracy" (higher is better)
                score REAL NOT NULL,         -- mean over the folds evaluated
                seconds REAL NOT NULL,       -- wall time of fitting and scoring those folds
                folds_done INTEGER, folds_total INTEGER, cv_seed INTEGER,
                info TEXT NOT NULL,          -- JSON: per-fold scores, rows used, warnings caught ...
                machine TEXT NOT NULL, created REAL NOT NULL   -- hostname, unix time

A task is identified by its name, a strategy by (learner, canonical JSON of its hyperparameters), a
result by its ``uid``; so files written on several machines merge (:func:`merge`) without duplicates.

Crash safety: the file is in WAL mode and every write is one transaction (``with conn:``), so a process
killed mid-write loses at most the row it was writing; earlier rows stay readable
(``tests/test_selection_kb.py`` kills a writer with SIGKILL and reopens the file).

Example:
    >>> kb = KnowledgeBase(":memory:")
    >>> kb.add_result("iris", Strategy("knn", {"n_neighbors": 5}), score=0.95, seconds=0.1,
    ...               metric="balanced_accuracy", meta_features={"rows": 150.0})
    >>> [(r.task, r.strategy.key, r.score) for r in kb.results()]
    [('iris', 'knn {"n_neighbors": 5}', 0.95)]
"""
from __future__ import annotations

import json
import math
import os
import socket
import sqlite3
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, source TEXT NOT NULL, meta_features TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS strategies (
    id INTEGER PRIMARY KEY, learner TEXT NOT NULL, params TEXT NOT NULL, UNIQUE (learner, params));
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY, uid TEXT UNIQUE NOT NULL,
    task_id INTEGER NOT NULL REFERENCES tasks(id), strategy_id INTEGER NOT NULL REFERENCES strategies(id),
    metric TEXT NOT NULL, score REAL NOT NULL, seconds REAL NOT NULL,
    folds_done INTEGER, folds_total INTEGER, cv_seed INTEGER, info TEXT NOT NULL,
    machine TEXT NOT NULL, created REAL NOT NULL);
CREATE INDEX IF NOT EXISTS results_task_strategy ON results (task_id, strategy_id, metric);
"""


class KnowledgeBaseError(ValueError):
    """A file that is not a learnfast knowledge base, or of another schema version."""


def _canonical(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, separators=(", ", ": "))


@dataclass(frozen=True)
class Strategy:
    """A learner name (see ``strategies.LEARNERS``) and its hyperparameters; hashable, ordered by ``key``."""

    learner: str
    params: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def key(self) -> str:
        """``learner {json params}``: the one spelling used in tables, the KB and the CLI."""
        return f"{self.learner} {_canonical(self.params)}"

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Strategy) and self.key == other.key

    @classmethod
    def from_key(cls, key: str) -> "Strategy":
        learner, _, params = key.partition(" ")
        return cls(learner, json.loads(params or "{}"))


@dataclass(frozen=True)
class Result:
    """One row of ``results`` joined with its task and strategy."""

    task: str
    strategy: Strategy
    metric: str
    score: float
    seconds: float
    folds_done: int | None
    folds_total: int | None
    info: dict[str, Any]


class KnowledgeBase:
    """A SQLite knowledge base of (task, strategy) -> score; ``path`` may be ``":memory:"``.

    Args:
        path: the file (created with the schema if missing, unless ``readonly``).
        readonly: open an existing file for reading only (nothing is written, not even WAL files);
            a ``.xz`` file (as :func:`export` ships it) is decompressed into memory.
    """

    def __init__(self, path: str | Path, readonly: bool = False) -> None:
        self.path = str(path)
        if self.path != ":memory:" and Path(self.path).is_dir():
            raise KnowledgeBaseError(f"{self.path} is a folder; give a knowledge-base file such as kb.sqlite")
        if readonly and not Path(self.path).is_file():
            raise FileNotFoundError(f"no knowledge base at {self.path}")
        if readonly and self.path.endswith(".xz"):
            self._conn = _decompressed(Path(self.path))
        elif readonly:
            self._conn = sqlite3.connect(f"{Path(self.path).resolve().as_uri()}?mode=ro", uri=True, timeout=30.0)
        else:
            self._conn = sqlite3.connect(self.path, timeout=30.0)
        try:
            if not readonly:
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA foreign_keys=ON")
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            tables = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as err:
            self._conn.close()
            raise KnowledgeBaseError(f"{self.path} is not a learnfast knowledge base (SQLite says: {err})") from None
        if tables and not {"tasks", "strategies", "results"} <= tables:
            self._conn.close()
            raise KnowledgeBaseError(f"{self.path} is an SQLite file without the knowledge-base tables (tasks, strategies, results)")
        if tables and version != SCHEMA_VERSION:
            self._conn.close()
            raise KnowledgeBaseError(f"{self.path} has knowledge-base schema version {version}; this learnfast reads {SCHEMA_VERSION}")
        if readonly:
            if not tables:
                self._conn.close()
                raise KnowledgeBaseError(f"{self.path} is an empty SQLite file, not a knowledge base")
            return
        with self._conn:
            self._conn.executescript(SCHEMA)
            self._conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "KnowledgeBase":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing: every public method is one transaction --------------------------------------------
    def add_task(self, name: str, meta_features: dict[str, float] | None = None, source: str = "") -> int:
        """Insert the task, or update its meta-features (when given) and source; returns its id."""
        with self._conn:
            return self._task_id(name, meta_features, source)

    def add_result(self, task: str, strategy: Strategy, *, score: float, seconds: float, metric: str,
                   folds_done: int | None = None, folds_total: int | None = None, cv_seed: int | None = None,
                   info: dict[str, Any] | None = None, meta_features: dict[str, float] | None = None,
                   source: str = "") -> None:
        """Record one evaluation (task and strategy are created as needed), in one transaction."""
        if not math.isfinite(score) or not math.isfinite(seconds):
            raise ValueError(f"score {score} and seconds {seconds} must be finite numbers")
        with self._conn:
            task_id = self._task_id(task, meta_features, source)
            strategy_id = self._strategy_id(strategy)
            self._conn.execute(
                "INSERT INTO results (uid, task_id, strategy_id, metric, score, seconds, folds_done, folds_total, cv_seed,"
                " info, machine, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (uuid.uuid4().hex, task_id, strategy_id, metric, float(score), float(seconds), folds_done, folds_total,
                 cv_seed, json.dumps(info or {}, sort_keys=True), socket.gethostname(), time.time()))

    def _task_id(self, name: str, meta_features: dict[str, float] | None, source: str) -> int:
        row = self._conn.execute("SELECT id, source FROM tasks WHERE name = ?", (name,)).fetchone()
        if row is None:
            cursor = self._conn.execute("INSERT INTO tasks (name, source, meta_features) VALUES (?, ?, ?)",
                                        (name, source, json.dumps(meta_features or {}, sort_keys=True)))
            return int(cursor.lastrowid)
        if meta_features:
            self._conn.execute("UPDATE tasks SET meta_features = ? WHERE id = ?", (json.dumps(meta_features, sort_keys=True), row[0]))
        if source and not row[1]:
            self._conn.execute("UPDATE tasks SET source = ? WHERE id = ?", (source, row[0]))
        return int(row[0])

    def _strategy_id(self, strategy: Strategy) -> int:
        params = _canonical(strategy.params)
        self._conn.execute("INSERT OR IGNORE INTO strategies (learner, params) VALUES (?, ?)", (strategy.learner, params))
        return int(self._conn.execute("SELECT id FROM strategies WHERE learner = ? AND params = ?",
                                      (strategy.learner, params)).fetchone()[0])

    # -- reading ------------------------------------------------------------------------------------
    def tasks(self) -> dict[str, dict[str, float]]:
        """Task name -> meta-features, in insertion order."""
        rows = self._conn.execute("SELECT name, meta_features FROM tasks ORDER BY id").fetchall()
        return {name: json.loads(mf) for name, mf in rows}

    def strategies(self) -> list[Strategy]:
        rows = self._conn.execute("SELECT learner, params FROM strategies ORDER BY id").fetchall()
        return [Strategy(learner, json.loads(params)) for learner, params in rows]

    def results(self, metric: str | None = None, task: str | None = None) -> list[Result]:
        """All results (optionally of one metric / task), oldest first."""
        query = ("SELECT t.name, s.learner, s.params, r.metric, r.score, r.seconds, r.folds_done, r.folds_total, r.info"
                 " FROM results r JOIN tasks t ON t.id = r.task_id JOIN strategies s ON s.id = r.strategy_id")
        where, args = [], []
        if metric is not None:
            where.append("r.metric = ?")
            args.append(metric)
        if task is not None:
            where.append("t.name = ?")
            args.append(task)
        if where:
            query += " WHERE " + " AND ".join(where)
        rows = self._conn.execute(query + " ORDER BY r.id", args).fetchall()
        return [Result(name, Strategy(learner, json.loads(params)), m, score, seconds, done, total, json.loads(info))
                for name, learner, params, m, score, seconds, done, total, info in rows]

    def completed(self, metric: str) -> set[tuple[str, str]]:
        """(task name, strategy key) pairs with a result over all folds (``folds_done == folds_total``)."""
        return {(r.task, r.strategy.key) for r in self.results(metric)
                if r.folds_done is None or r.folds_done == r.folds_total}

    def count(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM results").fetchone()[0])


def _decompressed(path: Path) -> sqlite3.Connection:
    """An in-memory connection holding the database in the xz file ``path``."""
    import lzma

    try:
        data = lzma.decompress(path.read_bytes())
    except lzma.LZMAError as err:
        raise KnowledgeBaseError(f"{path} is not an xz-compressed knowledge base ({err})") from None
    conn = sqlite3.connect(":memory:")
    if hasattr(conn, "deserialize"):  # Python >= 3.11
        conn.deserialize(data)
        return conn
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".sqlite") as tmp:  # Python 3.10: via a file, copied into memory
        tmp.write(data)
        tmp.flush()
        with sqlite3.connect(tmp.name) as disk:
            disk.backup(conn)
        disk.close()
    return conn


def merge(target: str | Path, sources: Iterable[str | Path]) -> int:
    """Copy every result of ``sources`` into ``target`` (created if missing); returns the rows added.

    Tasks match by name (meta-features: the target's are kept where it has any), strategies by learner
    and parameters, results by ``uid``: merging a file twice adds nothing the second time.
    """
    added = 0
    with KnowledgeBase(target) as into:
        for source in sources:
            with KnowledgeBase(source) as src:
                known = {r[0] for r in into._conn.execute("SELECT uid FROM results")}
                tasks = src._conn.execute("SELECT name, source, meta_features FROM tasks ORDER BY id").fetchall()
                rows = src._conn.execute(
                    "SELECT r.uid, t.name, t.source, s.learner, s.params, r.metric, r.score, r.seconds, r.folds_done,"
                    " r.folds_total, r.cv_seed, r.info, r.machine, r.created FROM results r"
                    " JOIN tasks t ON t.id = r.task_id JOIN strategies s ON s.id = r.strategy_id ORDER BY r.id").fetchall()
                with into._conn:  # one transaction per source file
                    for name, source_name, meta_features in tasks:  # tasks without results travel too
                        existing = into._conn.execute("SELECT meta_features FROM tasks WHERE name = ?", (name,)).fetchone()
                        keep = existing is not None and existing[0] != "{}"
                        into._task_id(name, None if keep else json.loads(meta_features), source_name)
                    for uid, name, source_name, learner, params, *rest in rows:
                        if uid in known:
                            continue
                        task_id = into._task_id(name, None, source_name)
                        strategy_id = into._strategy_id(Strategy(learner, json.loads(params)))
                        into._conn.execute(
                            "INSERT INTO results (uid, task_id, strategy_id, metric, score, seconds, folds_done, folds_total,"
                            " cv_seed, info, machine, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            (uid, task_id, strategy_id, *rest))
                        added += 1
    return added


def export(source: str | Path, target: str | Path, metric: str) -> int:
    """A compact copy for shipping: complete results of ``metric`` only, ``info`` emptied, one file
    (journal mode DELETE, vacuumed) that opens read-only anywhere, xz-compressed if ``target`` ends in
    ``.xz``; returns the rows written."""
    final = Path(target)
    if final.exists():
        raise FileExistsError(f"{final} exists; export writes a new file")
    if final.suffix == ".xz":  # built in a fresh temporary file next to it, then compressed
        import tempfile

        handle, name = tempfile.mkstemp(suffix=".sqlite", dir=final.parent)
        os.close(handle)
        target = Path(name)
    else:
        target = final
    with KnowledgeBase(source, readonly=True) as src:
        rows = src._conn.execute(
            "SELECT r.uid, t.name, t.source, t.meta_features, s.learner, s.params, r.metric, r.score, r.seconds, r.folds_done,"
            " r.folds_total, r.cv_seed, r.machine, r.created FROM results r JOIN tasks t ON t.id = r.task_id"
            " JOIN strategies s ON s.id = r.strategy_id WHERE r.metric = ? AND (r.folds_done IS NULL OR r.folds_done = r.folds_total)"
            " ORDER BY r.id", (metric,)).fetchall()
    with KnowledgeBase(target) as into, into._conn:
        for uid, name, source_name, meta, learner, params, *rest, machine, created in rows:
            task_id = into._task_id(name, json.loads(meta), source_name)
            strategy_id = into._strategy_id(Strategy(learner, json.loads(params)))
            into._conn.execute(
                "INSERT INTO results (uid, task_id, strategy_id, metric, score, seconds, folds_done, folds_total, cv_seed,"
                " info, machine, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, '{}', ?, ?)",
                (uid, task_id, strategy_id, *rest, machine, created))
    conn = sqlite3.connect(target)
    conn.execute("PRAGMA journal_mode=DELETE")
    conn.execute("DROP INDEX IF EXISTS results_task_strategy")  # rebuilt when the file is opened for writing
    conn.execute("VACUUM")
    conn.close()
    if final != target:
        import lzma

        final.write_bytes(lzma.compress(target.read_bytes(), preset=9 | lzma.PRESET_EXTREME))
        target.unlink()
    return len(rows)
