"""Lake's 20 within-alphabet 20-way one-shot runs (``all_runs.zip``), as one batched Task.

Each run is one task drawn from a single alphabet of the evaluation set: 20 training images, one
per character (``runNN/training/classNN.png``), and 20 test images of the same 20 characters drawn
by other people (``runNN/test/itemNN.png``); ``runNN/class_labels.txt`` maps each test item to its
training class. Images are decoded exactly as the Omniglot archives are (``omniglot._decode``:
28x28 Lanczos, ink = 255) and scaled to [0, 1], ink = 1, as the trainer's episodes.

Score a model trained on the background set only (split ``lake``): the runs' characters belong to
the evaluation set, which the ``vinyals`` split mixes into its training classes.

References:
    Lake, Salakhutdinov & Tenenbaum (2015). Human-level concept learning through probabilistic program induction.
    Koch, Zemel & Salakhutdinov (2015). Siamese Neural Networks for One-shot Image Recognition (92.0% on these runs).
"""
from __future__ import annotations

import hashlib
import re
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..tasks import Task, task_at
from ..protocol import EvalResult, episode_scores
from .omniglot import IMAGE_SIZE, OmniglotDataError, _decode
from .root import data_root, where_looked

RUNS = 20
WAYS = 20
ARCHIVE = "all_runs.zip"
SHA256 = "437c1eeab0af8484112e1b4cc0f3d541ec727f7c47b9b202da738af9dfd6c325"  # the official file
HOW_TO_GET = (
    "Put the official all_runs.zip (github.com/brendenlake/omniglot, python/one-shot-classification/all_runs.zip) "
    "in {folder}, or point LEARNFAST_DATA / --data-root at the folder that holds omniglot/."
)
LABEL_LINE = re.compile(r"run(\d\d)/test/item(\d\d)\.png\s+run(\d\d)/training/class(\d\d)\.png")


def _parse_labels(text: str, run: int, where: str) -> list[int]:
    """Training class (0-based) of each test item, in item order, from one run's ``class_labels.txt``."""
    labels: dict[int, int] = {}
    for line in filter(None, (raw.strip() for raw in text.splitlines())):
        match = LABEL_LINE.fullmatch(line)
        if match is None or int(match[1]) != run or int(match[3]) != run:
            raise OmniglotDataError(f"{where}: unexpected line {line!r}; expected 'run{run:02d}/test/itemNN.png run{run:02d}/training/classNN.png'")
        item, cls = int(match[2]), int(match[4])
        if not (1 <= item <= WAYS and 1 <= cls <= WAYS) or item in labels:
            raise OmniglotDataError(f"{where}: line {line!r} names an item or class outside 01..{WAYS}, or an item twice")
        labels[item] = cls - 1
    if sorted(labels) != list(range(1, WAYS + 1)):
        raise OmniglotDataError(f"{where}: maps {len(labels)} test items; expected items 01..{WAYS}, each once")
    return [labels[i] for i in range(1, WAYS + 1)]


def load_lake_runs(root: str | Path | None = None, verify: bool = True) -> Task:
    """Reads the 20 runs of ``<root>/omniglot/all_runs.zip`` as one batched :class:`Task`.

    Args:
        root: data folder holding ``omniglot/``, used as given; by default ``$LEARNFAST_DATA``, else the
            first of ``./data`` and ``../shared/data`` holding ``omniglot/`` (see :mod:`learnfast.data.root`).
        verify: check the archive's SHA256 against the official file's.

    Returns:
        ``Task`` with ``support_x (20, 20, 1, 28, 28)`` float32 in [0, 1] (ink = 1): run r's training
        images ``class01..20``, ``support_y (20, 20)`` = ``0..19``; ``query_x (20, 20, 1, 28, 28)``: its
        test images ``item01..20``, ``query_y (20, 20)``: each item's training class from ``class_labels.txt``.
        Raises :class:`OmniglotDataError`, naming the file and the fix, when it is missing or corrupt.
    """
    folder = data_root(root, "omniglot") / "omniglot"
    path = folder / ARCHIVE
    how = HOW_TO_GET.format(folder=folder.resolve())
    if not path.is_file():
        raise OmniglotDataError(f"Lake's one-shot runs not found: {path.resolve()}. {where_looked(root, 'omniglot')} {how}")
    if verify and hashlib.sha256(path.read_bytes()).hexdigest() != SHA256:
        raise OmniglotDataError(f"{path} does not match the official {ARCHIVE} (sha256 {SHA256}); it is corrupt or altered. "
                                f"{how} (pass verify=False to read an unlisted copy whose layout is right)")
    support = np.empty((RUNS, WAYS, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    query = np.empty_like(support)
    query_y = torch.empty(RUNS, WAYS, dtype=torch.long)
    entry = ARCHIVE
    try:
        with zipfile.ZipFile(path) as archive:
            for r in range(RUNS):
                run = f"run{r + 1:02d}"
                for i in range(WAYS):
                    entry = f"{run}/training/class{i + 1:02d}.png"
                    support[r, i] = _decode(archive.read(entry))
                    entry = f"{run}/test/item{i + 1:02d}.png"
                    query[r, i] = _decode(archive.read(entry))
                entry = f"{run}/class_labels.txt"
                text = archive.read(entry).decode("ascii")
                query_y[r] = torch.tensor(_parse_labels(text, r + 1, f"{path}: {entry}"))
    except (zipfile.BadZipFile, OSError, ValueError, KeyError) as err:  # KeyError: entry missing from the zip
        raise OmniglotDataError(f"{path}: cannot read {entry} ({err}); the archive is corrupt or incomplete. {how}") from err

    def as_float(images: np.ndarray) -> torch.Tensor:  # (20, 20, 28, 28) uint8 -> (20, 20, 1, 28, 28) in [0, 1]
        return (torch.from_numpy(images).float() / 255.0).unsqueeze(-3)

    support_y = torch.arange(WAYS).expand(RUNS, WAYS).clone()
    return Task(as_float(support), support_y, as_float(query), query_y)


def evaluate_lake_runs(
    algorithm: nn.Module,
    root: str | Path | None = None,
    batch_size: int | None = None,
    device: torch.device | str = "cpu",
) -> EvalResult:
    """Accuracy of ``algorithm`` on each of Lake's 20 runs (``values (20,)``) and their mean.

    The runs go through ``algorithm`` ``batch_size`` tasks per call (default as ``train.evaluate``:
    1 on CPU, 20 on accelerators), in eval mode and without gradients; the training mode is restored
    afterwards. Humans score 95.5%, Koch's Siamese net 92.0%. ``ci95`` is over the 20 runs (20 queries
    each), not over individual queries.
    """
    if batch_size is None:
        batch_size = 1 if torch.device(device).type == "cpu" else RUNS
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    runs = load_lake_runs(root).to(device)
    was_training = algorithm.training
    algorithm.eval()
    scores = []
    try:
        with torch.no_grad():
            for start in range(0, RUNS, batch_size):
                batch = task_at(runs, slice(start, start + batch_size))
                scores.append(episode_scores(algorithm(batch), batch, "accuracy").cpu())
    finally:
        algorithm.train(was_training)
    return EvalResult("accuracy", torch.cat(scores).double())
