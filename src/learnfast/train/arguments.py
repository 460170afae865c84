"""Argument types shared by every command line of the package (``learnfast`` and its sub-commands)."""
from __future__ import annotations

import argparse


def at_least(low: int):
    """An argparse type: an int ``>= low``, else a usage error naming the bound."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} must be >= {low}")
        return value
    parse.__name__ = f"integer >= {low}"
    return parse
