"""Omniglot (Lake et al. 2015) from the official zips, resized to 28x28 and cached as uint8.

Reads ``<root>/omniglot/images_background.zip`` and ``images_evaluation.zip``; checks the layout
(30 alphabets / 964 characters and 20 / 659, 20 drawings each) and the checksum; resizes each
105x105 drawing to 28x28 with Lanczos and inverts it (ink = 255), as MAML and ProtoNets do. The
decoded array is cached under ``$LEARNFAST_CACHE`` so later loads take well under a second.

Splits:
    ``lake``: meta-train on the background set (864 characters after a 100-character validation
    slice), meta-test on the 659 evaluation characters.
    ``vinyals``: all 1623 characters shuffled with a fixed seed; 1100 train / 100 validation / 423 test,
    each character also rotated by 90, 180, 270 degrees as new classes (x4).

References:
    Lake, Salakhutdinov & Tenenbaum (2015). Human-level concept learning through probabilistic program induction.
    Vinyals et al. (2016). Matching Networks for One Shot Learning.
"""
from __future__ import annotations

import hashlib
import io
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .root import cache_dir, data_root

IMAGE_SIZE = 28
DRAWINGS = 20
# name -> (alphabets, characters, accepted sha256 sums, accepted md5 sums of the official files)
ARCHIVES = {
    "images_background": (
        30, 964,
        {"027f78808b32f18f2d9605bf7d88768332eeff544a7cc2d120e8dcf627177151"},
        {"68d2efa1b9178cc56df9314c21c6e718"},
    ),
    "images_evaluation": (
        20, 659,
        {"296eef98e4bf0e683ac6924801b8bda930ef9b03d14d9132a8e65b64bbe81b6c"},
        {"6b91aef0f799c5bb55b94e3f2daec811"},
    ),
}
HOW_TO_GET = (
    "Put the official Omniglot zips (github.com/brendenlake/omniglot, folder python/: images_background.zip, "
    "images_evaluation.zip) in {folder}, or point LEARNFAST_DATA / --data-root at the folder that holds omniglot/."
)
SPLIT_SEED = 0
VINYALS_SIZES = (1100, 100, 423)
LAKE_VAL = 100


class OmniglotDataError(RuntimeError):
    """Omniglot files are missing, corrupt or laid out unexpectedly; the message says how to fix it."""


@dataclass(frozen=True)
class OmniglotArchive:
    """One decoded archive: ``images (characters, 20, 28, 28)`` uint8 with ink = 255, and names."""

    images: np.ndarray
    alphabets: list[str]  # per character
    characters: list[str]  # per character, "Alphabet/characterNN"


def _digest(path: Path) -> tuple[str, str]:
    sha, md5 = hashlib.sha256(), hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
            md5.update(block)
    return sha.hexdigest(), md5.hexdigest()


def _decode(data: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(data)).convert("L").resize((IMAGE_SIZE, IMAGE_SIZE), Image.LANCZOS)
    return 255 - np.asarray(image, dtype=np.uint8)  # ink = 255


def _read_zip(path: Path, name: str) -> OmniglotArchive:
    n_alphabets, n_chars = ARCHIVES[name][:2]
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise OmniglotDataError(f"{path} is not a readable zip ({err}). {HOW_TO_GET.format(folder=path.parent)}") from err
    with archive:
        files: dict[str, list[str]] = {}
        for entry in archive.namelist():
            parts = entry.split("/")
            if len(parts) == 4 and parts[0] == name and parts[3].endswith(".png"):
                files.setdefault(f"{parts[1]}/{parts[2]}", []).append(entry)
        characters = sorted(files)
        alphabets = [c.split("/")[0] for c in characters]
        bad = [c for c in characters if len(files[c]) != DRAWINGS]
        if len(set(alphabets)) != n_alphabets or len(characters) != n_chars or bad:
            raise OmniglotDataError(
                f"{path} has {len(set(alphabets))} alphabets / {len(characters)} characters "
                f"({len(bad)} without {DRAWINGS} drawings); expected {n_alphabets} / {n_chars} with {DRAWINGS} each "
                f"under {name}/<Alphabet>/characterNN/. The archive is incomplete or not Omniglot's. "
                + HOW_TO_GET.format(folder=path.parent)
            )
        images = np.empty((n_chars, DRAWINGS, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
        try:
            for i, character in enumerate(characters):
                for j, entry in enumerate(sorted(files[character])):
                    images[i, j] = _decode(archive.read(entry))
        except (zipfile.BadZipFile, OSError, ValueError) as err:
            raise OmniglotDataError(f"{path}: cannot decode {character} ({err}); the archive is corrupt. " + HOW_TO_GET.format(folder=path.parent)) from err
    return OmniglotArchive(images, alphabets, characters)


def load_omniglot(name: str = "images_background", root: str | Path | None = None, verify: bool = True) -> OmniglotArchive:
    """Decodes (or loads from cache) one Omniglot archive.

    Args:
        name: ``"images_background"`` or ``"images_evaluation"``.
        root: data folder holding ``omniglot/``; defaults to ``$LEARNFAST_DATA``.
        verify: check the archive's checksum against the known SHA256/MD5 sums.

    Returns:
        :class:`OmniglotArchive` with ``images`` of shape ``(characters, 20, 28, 28)``, uint8, ink = 255.
    """
    if name not in ARCHIVES:
        raise ValueError(f"unknown Omniglot archive {name!r}; choose one of {sorted(ARCHIVES)}")
    folder = data_root(root) / "omniglot"
    path = folder / f"{name}.zip"
    if not path.is_file():
        raise OmniglotDataError(f"Omniglot archive not found: {path.resolve()}. " + HOW_TO_GET.format(folder=folder.resolve()))
    sha, md5 = _digest(path)
    if verify and sha not in ARCHIVES[name][2] and md5 not in ARCHIVES[name][3]:
        raise OmniglotDataError(
            f"{path} has sha256 {sha}, which matches no known copy of {name}.zip; it is corrupt or altered. "
            + HOW_TO_GET.format(folder=folder)
            + " (pass verify=False to read an unlisted copy whose layout is right)"
        )
    cached = cache_dir() / f"omniglot_{name}_{sha[:16]}_{IMAGE_SIZE}.npz"
    if cached.is_file():
        try:
            with np.load(cached) as z:
                return OmniglotArchive(z["images"], list(z["alphabets"]), list(z["characters"]))
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            cached.unlink(missing_ok=True)  # a damaged cache is rebuilt from the archive
    archive = _read_zip(path, name)
    # a temporary name of its own: two runs started together both build the cache, and the later
    # atomic replace wins with identical contents instead of one finding the other's file gone
    tmp = cached.with_name(f"{cached.stem}.{uuid.uuid4().hex}.tmp.npz")
    try:
        np.savez(tmp, images=archive.images, alphabets=np.array(archive.alphabets), characters=np.array(archive.characters))
        tmp.replace(cached)
    finally:
        tmp.unlink(missing_ok=True)
    return archive


@dataclass(frozen=True)
class ClassSplit:
    """Items of one split: ``images (n, 28, 28)`` uint8 and ``labels (n,)`` class ids, plus each class's alphabet."""

    images: Tensor
    labels: Tensor
    class_alphabets: list[str]

    @property
    def num_classes(self) -> int:
        return len(self.class_alphabets)


def _as_split(images: np.ndarray, alphabets: list[str], rotations: bool) -> ClassSplit:
    x = torch.from_numpy(images)  # (C, 20, 28, 28)
    if rotations:
        # class c rotated by r*90 degrees becomes class 4c + r
        x = torch.stack([torch.rot90(x, r, dims=(2, 3)) for r in range(4)], dim=1).flatten(0, 1)
        alphabets = [a for a in alphabets for _ in range(4)]
    c = x.shape[0]
    labels = torch.arange(c).repeat_interleave(DRAWINGS)
    return ClassSplit(x.reshape(c * DRAWINGS, IMAGE_SIZE, IMAGE_SIZE).contiguous(), labels, alphabets)


def omniglot_split(split: str = "vinyals", part: str = "train", root: str | Path | None = None) -> ClassSplit:
    """One part (``train``/``val``/``test``) of a named class split (``vinyals`` or ``lake``)."""
    parts = ("train", "val", "test")
    if part not in parts:
        raise ValueError(f"unknown part {part!r}; choose one of {parts}")
    background = load_omniglot("images_background", root)
    rng = np.random.default_rng(SPLIT_SEED)
    if split == "lake":
        if part == "test":
            evaluation = load_omniglot("images_evaluation", root)
            return _as_split(evaluation.images, evaluation.alphabets, rotations=False)
        order = rng.permutation(len(background.characters))
        idx = np.sort(order[:LAKE_VAL] if part == "val" else order[LAKE_VAL:])
        return _as_split(background.images[idx], [background.alphabets[i] for i in idx], rotations=False)
    if split == "vinyals":
        evaluation = load_omniglot("images_evaluation", root)
        images = np.concatenate([background.images, evaluation.images])
        alphabets = background.alphabets + evaluation.alphabets
        order = rng.permutation(len(alphabets))
        n_train, n_val, _ = VINYALS_SIZES
        bounds = {"train": (0, n_train), "val": (n_train, n_train + n_val), "test": (n_train + n_val, len(order))}[part]
        idx = np.sort(order[bounds[0] : bounds[1]])
        return _as_split(images[idx], [alphabets[i] for i in idx], rotations=True)
    raise ValueError(f"unknown Omniglot split {split!r}; choose 'vinyals' (1100/100/423 characters, rotations) or 'lake' (background/evaluation)")
