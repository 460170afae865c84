"""Where data and caches live: the data root (``--data-root`` / ``LEARNFAST_DATA``) and ``LEARNFAST_CACHE``.

The data root is the folder that holds one sub-folder per dataset (``omniglot/``, ``text/``,
``movielens/`` ...). Every reader finds it with :func:`data_root` and one rule:

1. A root given explicitly (``--data-root`` on the command line, ``root=`` in Python) is used as
   given; no other place is searched.
2. Otherwise ``$LEARNFAST_DATA``, when set and not empty, is used as given; no other place is searched.
3. Otherwise the folders of ``DATA_SEARCH`` are tried in order, relative to the current directory:
   ``./data``, then ``../shared/data``. The first that holds the requested dataset's sub-folder
   (e.g. ``omniglot/``) is used.

When a reader does not find its files it raises its own error, naming the file it wanted and, from
:func:`where_looked`, every place it looked, in order, and how to fix it (put the files there, or
set ``LEARNFAST_DATA`` / ``--data-root``).
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Callable

DATA_ENV = "LEARNFAST_DATA"
# tried in order when no root is given; relative to the current directory at the time of the call
DATA_SEARCH: tuple[Path, ...] = (Path("data"), Path("..") / "shared" / "data")


def _given_root(override: str | os.PathLike | None) -> tuple[Path, str] | None:
    """The explicit root and where it came from, or ``None`` when the search applies."""
    if override is not None:
        return Path(override).expanduser(), "given by --data-root / root="
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser(), f"given by {DATA_ENV}={env}"
    return None


def data_candidates(override: str | os.PathLike | None = None) -> list[Path]:
    """The folders :func:`data_root` considers, in order.

    Args:
        override: an explicit root (``--data-root`` / ``root=``), or ``None``.

    Returns:
        ``[override]`` or ``[$LEARNFAST_DATA]`` (as given, ``~`` expanded) when either is set; else the
        absolute forms of ``DATA_SEARCH`` under the current directory.
    """
    given = _given_root(override)
    if given is not None:
        return [given[0]]
    # abspath, not resolve(): normalises ".." but keeps a symlinked data folder's own name
    return [Path(os.path.abspath(folder)) for folder in DATA_SEARCH]


def data_root(override: str | os.PathLike | None = None, dataset: str = "omniglot") -> Path:
    """The folder holding ``<dataset>/`` (``omniglot/images_background.zip`` etc.), by the module's rule.

    Args:
        override: an explicit root (``--data-root`` / ``root=``), used as given; ``None`` for the
            default (``$LEARNFAST_DATA``, else the first of ``./data`` and ``../shared/data`` that
            holds ``<dataset>/``).
        dataset: the sub-folder the caller needs, e.g. ``"omniglot"``.

    Returns:
        The root (not ``<root>/<dataset>``). When the search finds no candidate holding ``<dataset>/``
        this is the first candidate; the reader then reports its missing file with :func:`where_looked`.
    """
    candidates = data_candidates(override)
    return next((folder for folder in candidates if (folder / dataset).is_dir()), candidates[0])


def where_looked(override: str | os.PathLike | None = None, dataset: str = "omniglot") -> str:
    """One sentence for a reader's "not found" error: every place tried for ``<dataset>/``, in order.

    Example: ``"No data root was given (--data-root / root= / LEARNFAST_DATA), so these were searched in
    order, relative to the current directory /w/main: ./data = /w/main/data (no omniglot/ there),
    ../shared/data = /w/shared/data (no omniglot/ there); none holds omniglot/."``
    """
    given = _given_root(override)
    if given is not None:
        folder, origin = given
        return f"The data root {Path(os.path.abspath(folder))} was {origin}, so it is used as given and no other place is searched."
    places, found = [], False
    for relative, folder in zip(DATA_SEARCH, data_candidates(None)):
        found = (folder / dataset).is_dir()
        shown = str(relative) if relative.parts[0] == ".." else f"./{relative}"
        places.append(f"{shown} = {folder} ({'holds ' + dataset + '/, so it is used' if found else 'no ' + dataset + '/ there'})")
        if found:  # the search stops at the first folder holding the dataset, as data_root() does
            break
    return (f"No data root was given (--data-root / root= / {DATA_ENV}), so these were searched in order, relative to "
            f"the current directory {Path.cwd()}: {', '.join(places)}" + ("." if found else f"; none holds {dataset}/."))


def cache_dir() -> Path:
    """Writable folder for decoded arrays: ``$LEARNFAST_CACHE`` or ``~/.cache/learnfast``."""
    env = os.environ.get("LEARNFAST_CACHE")
    path = Path(env).expanduser() if env else Path.home() / ".cache" / "learnfast"
    path.mkdir(parents=True, exist_ok=True)
    return path


def replace_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """``write(tmp)`` to a temporary file of its own beside ``path`` (same suffix), then a rename to ``path``:
    a reader never sees a half-written file, and two processes writing the same file (two runs building
    one cache, two writers of one checkpoint) never share or delete each other's temporary file."""
    tmp = path.with_name(f"{path.stem}.{uuid.uuid4().hex}.tmp{path.suffix}")
    try:
        write(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
