"""Placeholders that import fine and refuse to be used."""
from __future__ import annotations


def placeholder(module: str, name: str) -> type:
    """A class named ``name`` that raises on construction, saying the real torchvision is needed."""

    def refuse(self, *args, **kwargs):
        raise RuntimeError(f"{module}.{name} is a benchmark stand-in; install the real torchvision to use it")

    return type(name, (), {"__init__": refuse, "__module__": module})


def module_getattr(module: str):
    """A module-level ``__getattr__`` that hands out placeholders for public names."""

    def __getattr__(name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return placeholder(module, name)

    return __getattr__
