"""Printing a benchmark's figures: one JSON line with ``--json``, else one ``key: value`` line each."""
from __future__ import annotations

import json
from typing import Any


def print_report(report: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(report))
        return
    for key, value in report.items():
        print(f"{key}: {value}")
