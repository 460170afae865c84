"""A folder of class sub-folders of images (PNG / JPEG) as labelled examples, decoded once and cached.

``root/<class name>/<image>``: every sub-folder is a class, every ``.png`` / ``.jpg`` / ``.jpeg`` in
it an example. Images are decoded with Pillow and resized to ``size x size`` with Lanczos, as the
Omniglot reader does (``invert=True`` also makes dark ink on a light page ink = 255, Omniglot's
convention, for the zoo's Omniglot models). The decoded uint8 array is cached under
``$LEARNFAST_CACHE``, keyed by the files' names, sizes and modification times and the settings.

Refused, each by name: an unreadable image, a class folder without images, a symbolic link, and
any path that leads outside ``root``.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from .labelled import DataError, LabelledData, label_ids
from .root import cache_dir, replace_atomic

EXTENSIONS = (".png", ".jpg", ".jpeg")


def _listing(root: Path) -> list[tuple[str, Path]]:
    """``(class name, image path)`` for every image, sorted; refuses links and paths outside ``root``."""
    if not root.is_dir():
        raise DataError(f"{root} is not a folder; pass a folder with one sub-folder of images per class")
    base = root.resolve()
    items: list[tuple[str, Path]] = []
    classes = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    for folder in classes:
        if folder.is_symlink():
            raise DataError(f"{folder}: symbolic links are not followed; copy the class folder into {root}")
        if not folder.is_dir():
            continue  # a stray file beside the class folders
        images = []
        for path in sorted(folder.iterdir()):
            if path.is_symlink():
                raise DataError(f"{path}: symbolic links are not followed; copy the image into {folder}")
            if not path.resolve().is_relative_to(base):
                raise DataError(f"{path} leads outside {root}; keep every image inside the root folder")
            if path.is_file() and path.suffix.lower() in EXTENSIONS:
                images.append(path)
        if not images:
            raise DataError(f"{folder}: no images ({', '.join(EXTENSIONS)}); remove the folder or add its examples")
        items += [(folder.name, path) for path in images]
    if not items:
        raise DataError(f"{root} has no class sub-folders with images; lay it out as {root}/<class>/<image>.png")
    return items


def decode_image(path: Path, size: int, channels: int, invert: bool) -> np.ndarray:
    try:
        with Image.open(path) as image:
            image = image.convert("L" if channels == 1 else "RGB").resize((size, size), Image.LANCZOS)
            array = np.asarray(image, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise DataError(f"{path}: not a readable image ({err}); fix or remove it") from err
    array = 255 - array if invert else array
    return array[None] if channels == 1 else array.transpose(2, 0, 1)  # (C, size, size)


def image_folder(root: str | os.PathLike, size: int = 28, channels: int = 1, invert: bool = False) -> LabelledData:
    """Labelled images from ``root/<class>/<image>``: ``inputs (n, channels, size, size)`` uint8, labels by sorted class name.

    Args:
        root: the folder of class sub-folders.
        size: images are resized to ``size x size`` (Lanczos).
        channels: 1 (grey) or 3 (RGB).
        invert: ``255 - value``, e.g. dark strokes on white to Omniglot's ink = 255.

    Returns:
        ``LabelledData``; scale ``inputs`` to floats with e.g. ``x.float() / 255`` (``EpisodeSampler``'s transform).
    """
    if channels not in (1, 3):
        raise DataError(f"channels must be 1 (grey) or 3 (RGB), got {channels}")
    if size < 1:
        raise DataError(f"size must be >= 1, got {size}")
    root = Path(root)
    items = _listing(root)
    key = hashlib.sha256(repr((size, channels, invert)).encode())
    for name, path in items:
        stat = path.stat()
        key.update(f"{name}/{path.name}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    cached = cache_dir() / f"folder_{key.hexdigest()[:24]}.npy"
    images = None
    if cached.is_file():
        try:
            images = np.load(cached, allow_pickle=False)
            if images.shape != (len(items), channels, size, size) or images.dtype != np.uint8:
                images = None
        except (OSError, ValueError, EOFError):
            images = None
    if images is None:
        images = np.stack([decode_image(path, size, channels, invert) for _, path in items])
        replace_atomic(cached, lambda tmp: np.save(tmp, images))
    labels, names = label_ids([name for name, _ in items], str(root))
    return LabelledData(torch.from_numpy(images), labels, names, source=str(root))
