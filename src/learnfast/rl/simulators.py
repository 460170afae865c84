"""The optional simulator packages of ``learnfast[rl]``, imported on first use with a one-line error when missing."""
from __future__ import annotations

import importlib
from types import ModuleType

INSTALL = "pip install learnfast[rl]"


def require(module: str, family: str) -> ModuleType:
    """``import module`` for the task family ``family``; ``ImportError`` naming the install command if it is missing."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(f"the {family} task family needs the simulator package {module.split('.')[0]!r}, "
                          f"which is not installed: {INSTALL}") from err
