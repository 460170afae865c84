"""Writes the tiny `learnfast predict` example of the README from the shared data (nothing is committed).

    python docs/make_predict_example.py predict_example

- ``OUT/glyphs/support/<character>/``: one image of each of five characters of an Omniglot evaluation
  alphabet (images_evaluation.zip: never seen in meta-training), ``OUT/glyphs/query/``: another drawing
  of each, named after its character so the output can be checked by eye;
- ``OUT/text/support.csv``: three CLINC150 training utterances of five intents (``text,label``),
  ``OUT/text/queries.txt``: one official test utterance of each.

Reads ``$LEARNFAST_DATA`` (default ``../shared/data``).
"""
from __future__ import annotations

import csv
import json
import os
import sys
import zipfile
from pathlib import Path

ALPHABET = "Tibetan"
CHARACTERS = ("character01", "character02", "character03", "character04", "character05")
INTENTS = ("translate", "weather", "balance", "alarm", "flight_status")


def glyphs(data: Path, out: Path) -> None:
    with zipfile.ZipFile(data / "omniglot" / "images_evaluation.zip") as z:
        for character in CHARACTERS:
            prefix = f"images_evaluation/{ALPHABET}/{character}/"
            drawings = sorted(n for n in z.namelist() if n.startswith(prefix) and n.endswith(".png"))
            (out / "support" / character).mkdir(parents=True, exist_ok=True)
            (out / "query").mkdir(parents=True, exist_ok=True)
            (out / "support" / character / "1.png").write_bytes(z.read(drawings[0]))
            (out / "query" / f"{character}.png").write_bytes(z.read(drawings[1]))


def texts(data: Path, out: Path) -> None:
    full = json.loads((data / "text" / "clinc150" / "data_full.json").read_text(encoding="utf-8"))
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "support.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for intent in INTENTS:
            writer.writerows([text, intent] for text, label in [r for r in full["train"] if r[1] == intent][:3])
    queries = [next(text for text, label in full["test"] if label == intent) for intent in INTENTS]
    (out / "queries.txt").write_text("\n".join(queries) + "\n", encoding="utf-8")


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        raise SystemExit("usage: python docs/make_predict_example.py OUT")
    data, out = Path(os.environ.get("LEARNFAST_DATA", "../shared/data")), Path(argv[0])
    glyphs(data, out / "glyphs")
    texts(data, out / "text")
    print(f"wrote {out}/glyphs (support/, query/) and {out}/text (support.csv, queries.txt)")


if __name__ == "__main__":
    main(sys.argv[1:])
