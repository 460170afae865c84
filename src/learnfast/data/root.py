"""Where data and caches live: ``LEARNFAST_DATA`` / ``--data-root`` and ``LEARNFAST_CACHE``."""
from __future__ import annotations

import os
from pathlib import Path


def data_root(override: str | os.PathLike | None = None) -> Path:
    """The folder holding ``omniglot/images_background.zip`` etc.

    Order: ``override`` (``--data-root``), then ``$LEARNFAST_DATA``, then ``./data``.
    """
    if override is not None:
        return Path(override).expanduser()
    env = os.environ.get("LEARNFAST_DATA")
    return Path(env).expanduser() if env else Path("data")


def cache_dir() -> Path:
    """Writable folder for decoded arrays: ``$LEARNFAST_CACHE`` or ``~/.cache/learnfast``."""
    env = os.environ.get("LEARNFAST_CACHE")
    path = Path(env).expanduser() if env else Path.home() / ".cache" / "learnfast"
    path.mkdir(parents=True, exist_ok=True)
    return path
