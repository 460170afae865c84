"""A Hugging Face ``datasets`` data set already on disk (``save_to_disk``) as labelled examples; nothing is downloaded.

The optional extra ``learnfast[hf]`` installs ``datasets``. ``load_hf_dataset(path)`` opens the
folder with ``datasets.load_from_disk`` (a ``DatasetDict`` needs ``split=``) and reads a text
column (strings) or an image column (decoded by ``datasets`` to Pillow images, then resized to
``size x size`` with Lanczos as the Omniglot reader does) and a label column. A ``ClassLabel``
column's ids become their names; other labels go through ``label_ids`` (names differing only in
case are an error).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .labelled import DataError, LabelledData, label_ids

EXTRA = "pip install 'learnfast[hf]'  (the datasets package)"


def is_hf_dataset(path: str | os.PathLike) -> bool:
    """Does ``path`` look like a ``save_to_disk`` folder (its ``state.json`` / ``dataset_dict.json``)?"""
    p = Path(path)
    return p.is_dir() and any((p / name).is_file() for name in ("state.json", "dataset_dict.json"))


def _open(path: Path, split: str | None):
    try:
        import datasets
    except ImportError as err:
        raise ImportError(f"{path} is a Hugging Face datasets folder; reading it needs the optional extra: {EXTRA}") from err
    try:
        data = datasets.load_from_disk(str(path))
    except (FileNotFoundError, ValueError, OSError) as err:
        raise DataError(f"{path}: not a readable `save_to_disk` folder ({err})") from err
    if isinstance(data, datasets.DatasetDict):
        if split is None:
            raise DataError(f"{path} holds the splits {sorted(data)}; choose one with split= (for --data, save one split: "
                            f"dataset_dict[NAME].save_to_disk(FOLDER))")
        if split not in data:
            raise DataError(f"{path}: no split {split!r}; it holds {sorted(data)}")
        return data[split]
    if split is not None:
        raise DataError(f"{path} holds a single data set, not splits; drop split={split!r}")
    return data


def hf_kind(path: str | os.PathLike, column: str = "image") -> str:
    """``"image"`` when the data set has an ``image`` column, else ``"text"``."""
    return "image" if column in _open(Path(path), None).column_names else "text"


def load_hf_dataset(path: str | os.PathLike, text: str = "text", image: str = "image", label: str = "label",
                    split: str | None = None, size: int = 28) -> LabelledData:
    """Labelled examples from a ``datasets`` folder: texts (a list of strings) or images uint8 ``(n, 1, size, size)``.

    Args:
        path: the folder ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk`` wrote.
        text, image, label: column names; the image column is used when present, else the text column.
        split: the split of a ``DatasetDict`` (required there).
        size: side of the resized grey images.
    """
    path = Path(path)
    dataset = _open(path, split)
    columns = dataset.column_names
    if label not in columns:
        raise DataError(f"{path}: no label column {label!r}; it has {columns}. Name it with label=")
    feature = dataset.features[label]
    raw = dataset[label]
    labels = [feature.int2str(v) for v in raw] if hasattr(feature, "int2str") else raw
    if image in columns:
        arrays = []
        for number, picture in enumerate(dataset[image]):
            if not isinstance(picture, Image.Image):
                raise DataError(f"{path}, row {number}: the {image!r} column holds {type(picture).__name__}, not an image")
            arrays.append(np.asarray(picture.convert("L").resize((size, size), Image.LANCZOS), dtype=np.uint8)[None])
        inputs = torch.from_numpy(np.stack(arrays)) if arrays else torch.zeros(0, 1, size, size, dtype=torch.uint8)
    elif text in columns:
        inputs = [str(t).strip() for t in dataset[text]]
        empty = [i for i, t in enumerate(inputs) if not t]
        if empty:
            raise DataError(f"{path}, row {empty[0]}: the text is empty")
    else:
        raise DataError(f"{path}: no {text!r} or {image!r} column; it has {columns}. Name one with text= / image=")
    if not labels:
        raise DataError(f"{path}: no examples")
    ids, names = label_ids(labels, str(path))
    return LabelledData(inputs, ids, names, source=str(path))
