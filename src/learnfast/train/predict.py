"""``learnfast predict``: adapt a checkpoint's learner to the user's labelled support examples and label queries.

Support: a folder of class sub-folders of images, a CSV / JSONL of labelled texts, or an ``.npz``
(``x``, ``y``). Queries: a folder of images (the files directly in it), a text file (one text per
line), or a CSV / JSONL with a text column. Inputs are prepared as the checkpoint's data set was:
28x28 grey images with ink = 255 for Omniglot models (``invert`` for dark strokes on a light page),
hashed n-grams or MiniLM embeddings for text models. Each query is predicted as if it were alone
(``learnfast.api.predict``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from ..data.folders import EXTENSIONS, decode_image, image_folder
from ..data.labelled import DataError, LabelledData, load_npz
from ..data.text import SUFFIXES as TEXT_SUFFIXES
from ..data.text import read_utf8, text_classification
from ..models.text import hash_ngrams
from .build import TEXT, input_shape
from .user_data import data_kind
from .config import RunConfig

IMAGES = {"omniglot"}


@dataclass(frozen=True)
class Queries:
    """What to label: ``inputs`` ready for the model and a name for each (file name or the text itself)."""

    inputs: Tensor
    names: list[str]


def _kind(cfg: RunConfig) -> str:
    if cfg.data.dataset == "custom":
        kind = data_kind(cfg.data.path)
        if kind == "arrays":
            raise DataError(f"this checkpoint was trained on the arrays of {cfg.data.path}; predict labels images or texts. "
                            f"Score it with `learnfast eval`, or call learnfast.predict on arrays in Python")
        return kind
    if cfg.data.dataset in IMAGES:
        return "image"
    if cfg.data.dataset in TEXT:
        return "text"
    raise DataError(f"predict labels images or texts; this checkpoint was trained on {cfg.data.dataset!r}")


def _encode_texts(cfg: RunConfig, texts: list[str]) -> Tensor:
    if cfg.model.backbone == "text-minilm":
        from ..models.sentence import sentence_embeddings

        return sentence_embeddings(texts)
    return hash_ngrams(texts)


def _as_model_images(images: Tensor) -> Tensor:
    """uint8 ``(n, 1, 28, 28)`` -> float in [0, 1], the form the Omniglot models were trained on."""
    return images.float() / 255.0


def load_support(cfg: RunConfig, path: str | os.PathLike, invert: bool = False) -> tuple[Tensor, LabelledData]:
    """The support examples at ``path`` as model inputs ``(S, ...)``, with their labels and class names."""
    path, kind = Path(path), _kind(cfg)
    if path.suffix.lower() == ".npz":
        data = load_npz(path)
        expected = input_shape(cfg)
        if kind == "text" or tuple(data.inputs.shape[1:]) != expected:
            raise DataError(f"{path}: arrays of shape {tuple(data.inputs.shape[1:])}; this checkpoint takes {expected} "
                            f"(use a class folder of images or a CSV / JSONL of texts instead)")
        return data.inputs.float(), data
    if kind == "image":
        if not path.is_dir():
            raise DataError(f"{path}: an image checkpoint takes a folder of class sub-folders of images as support")
        data = image_folder(path, size=28, channels=1, invert=invert)
        return _as_model_images(data.inputs), data
    if path.suffix.lower() not in TEXT_SUFFIXES:
        raise DataError(f"{path}: a text checkpoint takes a .csv or .jsonl file of labelled texts as support")
    data = text_classification(path)
    return _encode_texts(cfg, data.inputs), data


def load_queries(cfg: RunConfig, path: str | os.PathLike, invert: bool = False) -> Queries:
    """The queries at ``path`` as model inputs ``(Q, ...)`` and their names."""
    path, kind = Path(path), _kind(cfg)
    if kind == "image":
        if not path.is_dir():
            raise DataError(f"{path}: an image checkpoint takes a folder of images to label")
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in EXTENSIONS and not p.is_symlink())
        if not files:
            raise DataError(f"{path}: no images ({', '.join(EXTENSIONS)}) to label")
        images = torch.stack([torch.from_numpy(decode_image(p, 28, 1, invert)) for p in files])
        return Queries(_as_model_images(images), [p.name for p in files])
    if path.suffix.lower() in TEXT_SUFFIXES:
        texts = _labelless_texts(path)
    else:
        if not path.is_file():
            raise DataError(f"{path}: no such file; give a text file with one query per line, or a .csv / .jsonl")
        texts = [line.strip() for line in read_utf8(path).splitlines() if line.strip()]
    if not texts:
        raise DataError(f"{path}: no texts to label")
    return Queries(_encode_texts(cfg, texts), texts)


def _labelless_texts(path: Path) -> list[str]:
    """The ``text`` field of a CSV / JSONL whose rows need no label."""
    import csv
    import io
    import json

    content = read_utf8(path)
    if path.suffix.lower() == ".jsonl":
        rows = [json.loads(line) for line in content.splitlines() if line.strip()]
    else:
        rows = list(csv.DictReader(io.StringIO(content, newline="")))
    if any(not isinstance(row, dict) or "text" not in row for row in rows):
        raise DataError(f"{path}: every row needs a 'text' field")
    return [str(row["text"]).strip() for row in rows if str(row["text"]).strip()]
