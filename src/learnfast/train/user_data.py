"""Meta-training on the user's own classes: ``learnfast train CONFIG --data PATH`` (``[data] dataset = "custom"``).

``PATH`` is read by its kind: a folder of class sub-folders of images (28x28 grey, as the Omniglot
backbones take), a ``.csv`` / ``.jsonl`` of labelled texts (encoded by the config's text backbone),
an ``.npz`` of arrays ``x``, ``y``, or a Hugging Face ``datasets`` folder written by ``save_to_disk``
(the ``[hf]`` extra). The classes are split into disjoint meta-train / validation / test classes:

    the sorted class names are shuffled with seed 0 (``SPLIT_SEED``); validation and test take
    ``max(eval.ways, round(0.2 * classes))`` classes each, meta-training the rest, which must be at
    least ``train.ways``.

The split is written into the run's config (``[data] train_classes`` / ``val_classes`` /
``test_classes``), so every checkpoint carries it and ``eval``, ``report`` and ``--resume`` use it
again (a resume on data whose classes changed is an error naming those keys); ``classes.json`` in
the run folder shows it. Listing the three yourself in the config replaces the rule.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..data.folders import image_folder
from ..data.hf import hf_kind, is_hf_dataset, load_hf_dataset
from ..data.labelled import DataError, LabelledData, load_npz
from ..data.text import SUFFIXES as TEXT_SUFFIXES
from ..data.text import text_classification
from ..models.text import LENGTH as TEXT_LENGTH
from ..models.text import hash_ngrams
from .config import ConfigError, RunConfig

SPLIT_SEED = 0
HELD_OUT = 0.2  # share of the classes in each of validation and test (at least eval.ways)
IMAGE_SIZE = 28
PARTS = ("train", "val", "test")


def data_kind(path: str | None) -> str:
    """``"image"`` (a class-folder tree), ``"text"`` (CSV / JSONL, or a ``datasets`` folder of texts) or ``"arrays"`` (``.npz``)."""
    if path is None:
        raise ConfigError("[data] dataset = \"custom\" needs [data] path: pass --data PATH (a class folder tree, a CSV/JSONL or an .npz)")
    p = Path(path)
    if p.suffix.lower() in TEXT_SUFFIXES:
        return "text"
    if p.suffix.lower() == ".npz":
        return "arrays"
    if is_hf_dataset(p):
        return hf_kind(p)
    if p.is_dir() or (not p.exists() and not p.suffix):  # a moved class folder: still an image checkpoint for predict
        return "image"
    raise DataError(f"{path}: not a folder of class sub-folders, a .csv / .jsonl file or an .npz; --data takes one of those")


def check_custom(cfg: RunConfig) -> None:
    """``[data]`` keys that only a custom data set reads are errors elsewhere; a custom one needs its path."""
    d = cfg.data
    listed = [name for name in ("train_classes", "val_classes", "test_classes") if getattr(d, name) is not None]
    if d.dataset != "custom":
        if d.path is not None or listed:
            keys = ", ".join((["path"] if d.path is not None else []) + listed)
            raise ConfigError(f"[data] {keys}: only read with dataset = \"custom\" (set by --data PATH), not {d.dataset!r}; drop them")
        return
    data_kind(d.path)
    if d.split != "classes":
        raise ConfigError(f"[data] split = {d.split!r}: a custom data set is split by classes (split = \"classes\", as --data sets it)")
    if listed and len(listed) != 3:
        raise ConfigError(f"[data] lists {', '.join(listed)} but not all of train_classes, val_classes, test_classes; give all three or none")


def load_custom(cfg: RunConfig) -> LabelledData:
    """Every example of ``[data] path``: images as float ``(n, 1, 28, 28)`` in [0, 1], texts as strings, arrays as float."""
    path, kind = Path(cfg.data.path), data_kind(cfg.data.path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder (the run's [data] path); pass --data PATH of an existing one")
    if is_hf_dataset(path):
        data = load_hf_dataset(path, size=IMAGE_SIZE)
    elif kind == "text":
        return text_classification(path)
    elif kind == "arrays":
        data = load_npz(path)
        return LabelledData(data.inputs.float(), data.labels, data.class_names, data.source)
    else:
        data = image_folder(path, size=IMAGE_SIZE, channels=1)
    if isinstance(data.inputs, torch.Tensor) and data.inputs.dtype == torch.uint8:
        return LabelledData(data.inputs.float() / 255.0, data.labels, data.class_names, data.source)
    return data


def custom_input_shape(cfg: RunConfig) -> tuple[int, ...]:
    kind = data_kind(cfg.data.path)
    if kind == "text":
        return (TEXT_LENGTH,)
    if kind == "image":
        return (1, IMAGE_SIZE, IMAGE_SIZE)
    return tuple(load_custom(cfg).inputs.shape[1:])


def split_classes(names: list[str], train_ways: int, eval_ways: int, source: str) -> dict[str, list[str]]:
    """The seeded rule: ``{"train": [...], "val": [...], "test": [...]}`` of class names, disjoint."""
    held = max(eval_ways, round(HELD_OUT * len(names)))
    need = train_ways + 2 * eval_ways
    if len(names) - 2 * held < train_ways:
        raise DataError(
            f"{source}: {len(names)} classes cannot make disjoint meta-train / validation / test classes for "
            f"{train_ways}-way training and {eval_ways}-way evaluation: that needs at least {max(need, train_ways + 2 * held)} "
            f"classes ({held} validation + {held} test + {train_ways} training). Add classes, lower --ways / "
            f"--set eval.ways=N, or list the classes in [data] train_classes / val_classes / test_classes"
        )
    order = [sorted(names)[i] for i in np.random.default_rng(SPLIT_SEED).permutation(len(names))]
    return {"val": sorted(order[:held]), "test": sorted(order[held:2 * held]), "train": sorted(order[2 * held:])}


def assign_class_split(cfg: RunConfig) -> None:
    """Fills ``[data] train_classes / val_classes / test_classes`` by the seeded rule, unless the config lists them."""
    if cfg.data.dataset != "custom":
        return
    check_custom(cfg)
    data = load_custom(cfg)
    if cfg.data.train_classes is None:
        split = split_classes(data.class_names, cfg.train.ways, cfg.eval.ways, data.source)
        cfg.data.train_classes, cfg.data.val_classes, cfg.data.test_classes = split["train"], split["val"], split["test"]
    parts = {part: getattr(cfg.data, f"{part}_classes") for part in PARTS}
    for a in PARTS:
        for b in PARTS[PARTS.index(a) + 1:]:
            shared = sorted(set(parts[a]) & set(parts[b]))
            if shared:
                raise ConfigError(f"[data] {a}_classes and {b}_classes share {shared[:5]}; the class split must be disjoint")
    cfg.data.path = str(Path(cfg.data.path).resolve())  # eval and --resume read the same files from anywhere


def custom_part(cfg: RunConfig, part: str, encode=None) -> LabelledData:
    """The ``part`` classes of the custom data set, relabelled ``0..k-1`` by sorted name; texts encoded by ``encode``."""
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, got {part!r}")
    names = getattr(cfg.data, f"{part}_classes")
    names = None if names is None else sorted(names)
    if names is None:
        raise ConfigError("the custom data set has no class split yet; it is made when `learnfast train --data PATH` starts")
    data = load_custom(cfg)
    index = {name: i for i, name in enumerate(data.class_names)}
    missing = [name for name in names if name not in index]
    if missing:
        raise DataError(f"{data.source}: the run's {part} classes {missing[:5]} are not in the data any more; "
                        f"restore them, or train a new run on the changed data")
    ids = torch.tensor([index[name] for name in names])
    keep = torch.isin(data.labels, ids)
    labels = torch.searchsorted(ids.sort().values, data.labels[keep])  # names are sorted, so ids are too
    rows = keep.nonzero().flatten().tolist()
    inputs = [data.inputs[i] for i in rows] if isinstance(data.inputs, list) else data.inputs[keep]
    if isinstance(inputs, list):
        inputs = (encode or hash_ngrams)(inputs)
    return LabelledData(inputs, labels, names, f"{data.source} ({part} classes)")


def write_class_split(cfg: RunConfig, folder: Path) -> None:
    """``folder/classes.json``: the data path, the rule and the three class lists of a custom run."""
    d = cfg.data
    record = {"path": d.path, "rule": f"sorted names shuffled with seed {SPLIT_SEED}; validation and test "
              f"max(eval.ways, round({HELD_OUT} x classes)) each", "train": d.train_classes, "val": d.val_classes, "test": d.test_classes}
    (folder / "classes.json").write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
