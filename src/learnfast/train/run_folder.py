"""A run folder has one writer at a time, and a new run never mixes with an old one.

``RunLock``: an exclusive ``flock`` on ``OUT/.lock`` (holding the writer's pid) for the life of a
run; a second writer fails at once and names the holder. The kernel drops the lock when the
process ends, however it ends (``kill -9`` included), so a stale lock never blocks a ``--resume``.
``prepare_run_folder``: an existing run without ``--resume`` is an error unless ``--overwrite``
asks to delete it.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from types import TracebackType

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: runs are not locked there
    fcntl = None  # type: ignore[assignment]

LOCK = ".lock"
RUN_FILES = ("last.safetensors", "best.safetensors", "pretrained.safetensors", "metrics.jsonl")


class RunFolderError(RuntimeError):
    """The run folder is in use, holds another run, or is not a folder; the message says what to do."""


class RunLock:
    """Context manager holding ``folder/.lock`` exclusively; ``RunFolderError`` if another process holds it."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.path = Path(folder) / LOCK
        self._file = None

    def __enter__(self) -> "RunLock":
        self._file = open(self.path, "a+")
        if fcntl is not None:
            try:
                fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self._file.seek(0)
                holder = self._file.read().strip() or "unknown"
                self._file.close()
                raise RunFolderError(
                    f"{self.path.parent} is in use by another run (pid {holder}); wait for it to finish, stop it, "
                    f"or choose another --out"
                ) from None
        self._file.seek(0)
        self._file.truncate()
        self._file.write(f"{os.getpid()}\n")
        self._file.flush()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if self._file is not None:
            self._file.close()  # closing the descriptor releases the flock
            self._file = None


def check_out_folder(folder: Path) -> None:
    """``RunFolderError`` if ``folder`` exists and is not a folder."""
    if folder.exists() and not folder.is_dir():
        raise RunFolderError(f"--out {folder} is a file, not a run folder; choose another --out")


def prepare_run_folder(folder: Path, resume: bool, overwrite: bool) -> None:
    """Checks (and with ``overwrite`` empties) ``folder`` for a run; call it while holding the ``RunLock``."""
    if resume and overwrite:
        raise RunFolderError("--resume continues the run in --out and --overwrite deletes it; pass one of them")
    existing = [name for name in RUN_FILES if (folder / name).exists()]
    if resume or not existing:
        return
    if not overwrite:
        raise RunFolderError(
            f"{folder} already holds a run ({', '.join(existing)}); continue it with --resume, start it over with "
            f"--overwrite (deletes those files), or choose another --out"
        )
    for name in existing:
        (folder / name).unlink()
    if (folder / "snapshots").is_dir():  # [train] keep_every's weights belong to the deleted run
        shutil.rmtree(folder / "snapshots")
