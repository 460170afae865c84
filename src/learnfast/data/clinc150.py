"""CLINC150 (Larson et al. 2019): 150 intents in 10 domains, 150 utterances each, plus out-of-scope queries.

Reads ``<root>/text/clinc150/data_full.json`` and ``domains.json`` (CC BY 3.0), checks their
checksums, and pools each intent's train / val / test utterances (100 + 20 + 30): for few-shot
learning the intents themselves are split, so every utterance of an intent sits on one side.

Class splits (seeded, fixed):
    ``intents``: the 150 intents shuffled with seed 0: 100 meta-train / 20 validation / 30 test
    intents, from every domain (test intents are unseen, their domains are not).
    ``domains``: the 10 domains shuffled with seed 0: 6 meta-train / 1 validation / 3 test domains
    (15 intents each): test intents come from domains never seen in meta-training.
The out-of-scope utterances (``oos_*``, 1200) are ``out_of_scope()``.

References:
    Larson et al. (2019). An Evaluation Dataset for Intent Classification and Out-of-Scope Prediction. EMNLP-IJCNLP.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from .labelled import DataError, LabelledData, label_ids
from .root import data_root, where_looked

SHA256 = {
    "data_full.json": "36923c3705a59e08fe9c3883d8bc2dd966ef93e22cb78ac41171782a698d56e0",
    "domains.json": "b947b579d3b8e74b06f93b01083d8efaff2888b43a3e362533bd88a6e1211b3a",
}
SPLITS = {"intents": (100, 20, 30), "domains": (6, 1, 3)}
PARTS = ("train", "val", "test")
SPLIT_SEED = 0


def _read(root: str | Path | None, name: str) -> object:
    folder = data_root(root, dataset="text") / "text" / "clinc150"
    path = folder / name
    if not path.is_file():
        raise DataError(f"CLINC150 file not found: {path}. {where_looked(root, dataset='text')} Put data_full.json and "
                        f"domains.json (github.com/clinc/oos-eval, data/) in <data>/text/clinc150/")
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != SHA256[name]:
        raise DataError(f"{path} does not match the official file's sha256; it is altered or corrupt")
    return json.loads(data)


def clinc150_split(split: str = "intents", part: str = "train", root: str | Path | None = None) -> LabelledData:
    """The utterances of one part (``train`` / ``val`` / ``test``) of a class split (``intents`` / ``domains``)."""
    if split not in SPLITS:
        raise ValueError(f"unknown CLINC150 split {split!r}; choose one of {sorted(SPLITS)}")
    if part not in PARTS:
        raise ValueError(f"unknown part {part!r}; choose one of {PARTS}")
    full, domains = _read(root, "data_full.json"), _read(root, "domains.json")
    rng = np.random.default_rng(SPLIT_SEED)
    sizes = SPLITS[split]
    start = sum(sizes[: PARTS.index(part)])
    if split == "intents":
        intents = sorted(i for d in domains.values() for i in d)
        chosen = {intents[k] for k in rng.permutation(len(intents))[start:start + sizes[PARTS.index(part)]]}
    else:
        names = sorted(domains)
        chosen = {i for k in rng.permutation(len(names))[start:start + sizes[PARTS.index(part)]] for i in domains[names[k]]}
    pairs = [(text, intent) for key in ("train", "val", "test") for text, intent in full[key] if intent in chosen]
    labels, names = label_ids([intent for _, intent in pairs], f"CLINC150 {split}/{part}")
    return LabelledData([text for text, _ in pairs], labels, names, source=f"CLINC150 {split}/{part}")


def clinc150_official(part: str, root: str | Path | None = None) -> LabelledData:
    """All 150 intents' utterances of one official part (``train`` 100, ``val`` 20, ``test`` 30 per intent): the
    intent-detection papers' setting (Casanueva et al. 2020; Zhang et al. 2020), not a class split."""
    if part not in PARTS:
        raise ValueError(f"unknown part {part!r}; choose one of {PARTS}")
    pairs = _read(root, "data_full.json")[part]
    labels, names = label_ids([intent for _, intent in pairs], f"CLINC150 official {part}")
    return LabelledData([text for text, _ in pairs], labels, names, source=f"CLINC150 official {part}")


def out_of_scope(root: str | Path | None = None, part: str | None = None) -> list[str]:
    """The out-of-scope utterances of one official part (``train`` 100, ``val`` 100, ``test`` 1000), or all 1200 pooled."""
    if part is not None and part not in PARTS:
        raise ValueError(f"unknown part {part!r}; choose one of {PARTS}")
    full = _read(root, "data_full.json")
    keys = ("oos_train", "oos_val", "oos_test") if part is None else (f"oos_{part}",)
    return [text for key in keys for text, _ in full[key]]
