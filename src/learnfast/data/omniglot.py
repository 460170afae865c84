"""Omniglot (Lake et al. 2015) from the official zips, resized to 28x28 and cached as uint8.

Reads ``<root>/omniglot/images_background.zip`` and ``images_evaluation.zip``; checks the layout
(30 alphabets / 964 characters and 20 / 659, 20 drawings each) and the checksum; resizes each
105x105 drawing to 28x28 with Lanczos and inverts it (ink = 255), as MAML and ProtoNets do. The
decoded array is cached under ``$LEARNFAST_CACHE`` so later loads take well under a second; the cache
records the source archive's sha256 and a digest of its contents, and one that does not match (or
cannot be read) is rebuilt from the archive with a one-line notice on stderr.

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
import json
import pickle
import struct
import sys
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from .root import cache_dir, data_root, replace_atomic, where_looked

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
CACHE_FORMAT = 1  # bump when the cache's entries change; older caches are then rebuilt
CACHE_ENTRIES = ("meta", "images", "alphabets", "characters")
# Anything np.load or zipfile may raise on a damaged, truncated or foreign file (a .npy under the
# .npz name makes np.load return an array, and ``with`` on it raises TypeError).
UNREADABLE = (EOFError, TypeError, ValueError, OSError, KeyError, RuntimeError, zipfile.BadZipFile, zlib.error,
              struct.error, pickle.UnpicklingError)
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


class _StaleCache(Exception):
    """The decode cache cannot be used; the message says why (for the rebuild notice)."""


def _content_digest(images: np.ndarray, alphabets: list[str], characters: list[str]) -> str:
    """sha256 over dtype, shape, image bytes and names.

    Measured on the 2-core CPU: 8 ms for the background set's 15 MB of images, 6 ms for the
    evaluation set's 10 MB (sha256 runs at ~1.8 GB/s there; blake2b took twice as long), small
    next to reading the file.
    """
    digest = hashlib.sha256(f"{images.dtype.str} {images.shape}\n".encode())
    digest.update(np.ascontiguousarray(images).data)
    digest.update(("\n".join(alphabets) + "\0" + "\n".join(characters)).encode())
    return digest.hexdigest()


def _write_cache(path: Path, archive: OmniglotArchive, source_sha256: str) -> None:
    """Writes ``archive`` with its record (format, source sha256, shape, dtype, digest), atomically."""
    images = archive.images
    record = {
        "format": CACHE_FORMAT,
        "source_sha256": source_sha256,
        "shape": list(images.shape),
        "dtype": images.dtype.str,
        "digest": _content_digest(images, archive.alphabets, archive.characters),
    }
    # two runs started together both build the cache; the later replace wins with identical contents
    replace_atomic(path, lambda tmp: np.savez(tmp, images=images, alphabets=np.array(archive.alphabets),
                                              characters=np.array(archive.characters), meta=np.array(json.dumps(record))))


def _read_cache(path: Path, source_sha256: str, n_chars: int) -> OmniglotArchive:
    """Loads a cache written by :func:`_write_cache` for the archive with ``source_sha256``.

    Raises:
        _StaleCache: the file is unreadable, lacks an entry, was made from another archive, or its
            images (``(n_chars, 20, 28, 28)`` uint8) or names do not match the recorded digest.
    """
    try:
        # our own file handle, so it is closed even when np.load fails half-way
        with open(path, "rb") as f:
            head = f.read(4)
            if head != b"PK\x03\x04":  # every .npz is a zip; say so plainly instead of numpy's guesses
                raise _StaleCache("empty file" if not head else "not an .npz file")
            f.seek(0)
            with np.load(f, allow_pickle=False) as z:
                missing = [key for key in CACHE_ENTRIES if key not in z.files]
                if missing:
                    raise _StaleCache(f"no {', '.join(map(repr, missing))} entry; written by an older learnfast or damaged")
                entries = {key: z[key] for key in CACHE_ENTRIES}
    except UNREADABLE as err:
        raise _StaleCache(f"unreadable: {type(err).__name__}: {' '.join(str(err).split())}") from err
    meta = entries["meta"]
    try:
        record = json.loads(meta.item()) if meta.shape == () and meta.dtype.kind == "U" else None
    except ValueError:
        record = None
    if not isinstance(record, dict):
        raise _StaleCache("its 'meta' entry is not a JSON record")
    if record.get("format") != CACHE_FORMAT:
        raise _StaleCache(f"cache format {record.get('format')!r}, expected {CACHE_FORMAT}")
    if record.get("source_sha256") != source_sha256:
        raise _StaleCache(f"made from an archive with sha256 {record.get('source_sha256')}, not this one ({source_sha256})")
    images, expected = entries["images"], (n_chars, DRAWINGS, IMAGE_SIZE, IMAGE_SIZE)
    if images.dtype != np.uint8 or images.shape != expected:
        raise _StaleCache(f"images are {images.dtype} {images.shape}, expected uint8 {expected}")
    for key in ("alphabets", "characters"):
        if entries[key].dtype.kind != "U" or entries[key].shape != (n_chars,):
            raise _StaleCache(f"{key} are {entries[key].dtype} {entries[key].shape}, expected {n_chars} strings")
    alphabets, characters = entries["alphabets"].tolist(), entries["characters"].tolist()
    if _content_digest(images, alphabets, characters) != record.get("digest"):
        raise _StaleCache("its contents do not match the digest recorded when it was written")
    return OmniglotArchive(images, alphabets, characters)


def load_omniglot(name: str = "images_background", root: str | Path | None = None, verify: bool = True) -> OmniglotArchive:
    """Decodes (or loads from cache) one Omniglot archive.

    Args:
        name: ``"images_background"`` or ``"images_evaluation"``.
        root: data folder holding ``omniglot/``, used as given; by default ``$LEARNFAST_DATA``, else the
            first of ``./data`` and ``../shared/data`` holding ``omniglot/`` (see :mod:`learnfast.data.root`).
        verify: check the archive's checksum against the known SHA256/MD5 sums.

    Returns:
        :class:`OmniglotArchive` with ``images`` of shape ``(characters, 20, 28, 28)``, uint8, ink = 255.
        A cache that cannot be read or does not match its record is rebuilt, with one line on stderr.
    """
    if name not in ARCHIVES:
        raise ValueError(f"unknown Omniglot archive {name!r}; choose one of {sorted(ARCHIVES)}")
    folder = data_root(root, "omniglot") / "omniglot"
    path = folder / f"{name}.zip"
    if not path.is_file():
        raise OmniglotDataError(f"Omniglot archive not found: {path.resolve()}. {where_looked(root, 'omniglot')} "
                                + HOW_TO_GET.format(folder=folder.resolve()))
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
            return _read_cache(cached, sha, ARCHIVES[name][1])
        except _StaleCache as err:  # a cache is disposable: rebuild it (the atomic write replaces it)
            print(f"learnfast: rebuilding the Omniglot cache {cached} ({err})", file=sys.stderr)
    archive = _read_zip(path, name)
    _write_cache(cached, archive, sha)
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
