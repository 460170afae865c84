"""A user's labelled examples as arrays: the form every adapter produces and ``EpisodeSampler`` takes.

``LabelledData(inputs (n, ...), labels (n,), class_names)``: labels are ``0..C-1`` in the order of
the sorted class names, so the same files always give the same ids. ``array_dataset`` builds one
from arrays with labels of any kind (ints or strings); ``load_npz`` from an ``.npz`` file holding
``x`` and ``y`` (read without pickle, so a file cannot run code).
"""
from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from ..episodes import EpisodeSampler, EpisodeSpec


class DataError(ValueError):
    """The user's data cannot be read as labelled examples; the message names the file or class and the fix."""


@dataclass(frozen=True)
class LabelledData:
    """``inputs (n, ...)`` with integer ``labels (n,)`` in ``0..len(class_names)-1``, and where they came from."""

    inputs: Any  # a Tensor, or a list of strings for text
    labels: Tensor
    class_names: list[str]
    source: str = "arrays"

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def counts(self) -> dict[str, int]:
        """Examples per class name."""
        counts = torch.bincount(self.labels, minlength=self.num_classes).tolist()
        return dict(zip(self.class_names, counts))

    def check_episodes(self, spec: EpisodeSpec) -> None:
        """``DataError`` naming the classes too small for ``spec`` (shots + queries each), or too few classes."""
        if spec.ways > self.num_classes:
            raise DataError(f"{self.source}: {spec.ways}-way episodes need {spec.ways} classes; it has {self.num_classes}")
        need = spec.shots + spec.queries
        small = {name: n for name, n in self.counts().items() if n < need}
        if small and self.num_classes - len(small) < spec.ways:
            shown = ", ".join(f"{name!r} ({n})" for name, n in list(small.items())[:5])
            raise DataError(f"{self.source}: episodes of {spec.shots} shots + {spec.queries} queries need {need} examples per "
                            f"class; {len(small)} classes have fewer: {shown}. Add examples or lower shots/queries")

    def sampler(self, spec: EpisodeSpec, transform: Callable[[Tensor], Tensor] | None = None,
                classes: Sequence[int] | None = None) -> EpisodeSampler:
        """An ``EpisodeSampler`` over these examples (``classes``: a subset of class ids, a class split)."""
        self.check_episodes(spec)
        if not isinstance(self.inputs, Tensor):
            raise DataError(f"{self.source}: inputs are {type(self.inputs).__name__}; encode them into a tensor first "
                            f"(text: an encoder from learnfast.models)")
        return EpisodeSampler(self.inputs, self.labels, spec, classes=classes, transform=transform)


def label_ids(labels: Sequence[Any], source: str) -> tuple[Tensor, list[str]]:
    """Class ids ``(n,)`` from any labels, numbered by sorted class name; names differing only in case are an error."""
    names = [str(label).strip() for label in labels]
    if any(not name for name in names):
        raise DataError(f"{source}: an example has an empty label; every example needs a class label")
    classes = sorted(set(names))
    folded: dict[str, str] = {}
    for name in classes:
        other = folded.setdefault(name.casefold(), name)
        if other != name:
            raise DataError(f"{source}: labels {other!r} and {name!r} differ only in case; spell each class one way")
    index = {name: i for i, name in enumerate(classes)}
    return torch.tensor([index[name] for name in names], dtype=torch.long), classes


def array_dataset(inputs: Any, labels: Sequence[Any], source: str = "arrays") -> LabelledData:
    """Labelled examples from an array ``(n, ...)`` (numpy or torch) and ``n`` labels of any kind."""
    x = torch.as_tensor(np.asarray(inputs)) if not isinstance(inputs, Tensor) else inputs
    if x.dim() < 1 or x.shape[0] == 0:
        raise DataError(f"{source}: no examples (inputs of shape {tuple(x.shape)})")
    labels = list(labels.tolist() if hasattr(labels, "tolist") else labels)
    if len(labels) != x.shape[0]:
        raise DataError(f"{source}: {x.shape[0]} inputs but {len(labels)} labels; give one label per input")
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        raise DataError(f"{source}: inputs hold NaN or inf; clean or drop those examples")
    ids, names = label_ids(labels, source)
    return LabelledData(x, ids, names, source)


def load_npz(path: str | os.PathLike, x_key: str = "x", y_key: str = "y") -> LabelledData:
    """Labelled examples from an ``.npz`` holding arrays ``x_key (n, ...)`` and ``y_key (n,)`` (no pickled objects)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in (x_key, y_key) if k not in archive.files]
            if missing:
                raise DataError(f"{path}: no array named {missing}; it holds {archive.files}. Pass x_key= / y_key=")
            x, y = archive[x_key], archive[y_key]
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        if isinstance(err, DataError):
            raise
        raise DataError(f"{path}: not a readable .npz of plain arrays ({err})") from err
    return array_dataset(x, y, source=str(path))
