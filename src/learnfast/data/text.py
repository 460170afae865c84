"""Labelled texts from a CSV or JSONL file, e.g. customer messages with their intents.

CSV (a header row naming the columns) or JSONL (one JSON object per line), chosen by the file's
suffix; the text and label fields are ``text`` and ``label`` unless named otherwise. The file must
be UTF-8 (a byte-order mark is allowed); anything else is refused with the position of the first
bad byte. Empty texts, missing fields and class names that differ only in case are errors naming
the line.
"""
from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from .labelled import DataError, LabelledData, label_ids

SUFFIXES = (".csv", ".jsonl")


def read_utf8(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise DataError(f"{path}: not UTF-8 (byte {err.start}, line {line}: {data[err.start:err.start + 1]!r}); "
                        f"save the file as UTF-8") from None


def _rows(path: Path, text: str) -> list[tuple[int, dict]]:
    content = read_utf8(path)
    if path.suffix.lower() == ".jsonl":
        rows = []
        for number, line in enumerate(content.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{path}, line {number}: not a JSON object ({err.msg})") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}, line {number}: a JSONL line must be an object like {{\"text\": ..., \"label\": ...}}")
            rows.append((number, row))
        return rows
    reader = csv.DictReader(io.StringIO(content, newline=""))
    if reader.fieldnames is None:
        raise DataError(f"{path} is empty; the first line must name the columns, e.g. text,label")
    return [(number, row) for number, row in enumerate(reader, 2)]


def text_classification(path: str | os.PathLike, text: str = "text", label: str = "label") -> LabelledData:
    """Labelled texts: ``inputs`` a list of ``n`` strings, ``labels (n,)`` by sorted class name.

    Args:
        path: a ``.csv`` or ``.jsonl`` file.
        text, label: the column (CSV) or key (JSONL) names.
    """
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise DataError(f"{path}: expected a .csv or .jsonl file")
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    texts, labels = [], []
    for number, row in _rows(path, text):
        missing = [key for key in (text, label) if key not in row or row[key] is None]
        if missing:
            raise DataError(f"{path}, line {number}: no {' / '.join(repr(m) for m in missing)} field; it has {sorted(row)}. "
                            f"Name the fields with text= / label= (CLI: --text-column / --label-column)")
        value = str(row[text]).strip()
        if not value:
            raise DataError(f"{path}, line {number}: the text is empty")
        texts.append(value)
        labels.append(row[label])
    if not texts:
        raise DataError(f"{path}: no examples")
    ids, names = label_ids(labels, str(path))
    return LabelledData(texts, ids, names, source=str(path))
