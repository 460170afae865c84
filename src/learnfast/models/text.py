"""A dependency-free text encoder: hashed word and character n-grams, averaged through a trainable embedding.

``hash_ngrams`` turns each text into the ids of its n-grams (lower-cased word 1- and 2-grams and
character 3-grams of each word with ``<`` ``>`` boundaries, as fastText does), each hashed into
one of ``buckets`` with CRC-32 (stable across runs and machines, unlike Python's ``hash``), padded
to ``length`` with the id ``buckets``. ``HashingEncoder`` is an ``nn.EmbeddingBag`` over those ids
(mean of the n-grams' vectors: a trainable projection of the hashed n-gram counts), optionally
followed by a linear head. It works on any language and needs nothing installed.
"""
from __future__ import annotations

import re
import zlib
from typing import Sequence

import torch
from torch import Tensor, nn

BUCKETS = 16384
LENGTH = 128
WORD = re.compile(r"\w+", re.UNICODE)


def ngrams(text: str) -> list[str]:
    """The n-grams of one text: words, word pairs and the character 3-grams of each word."""
    words = WORD.findall(text.lower())
    grams = [f"w:{w}" for w in words] + [f"b:{a} {b}" for a, b in zip(words, words[1:])]
    for w in words:
        padded = f"<{w}>"
        grams += [f"c:{padded[i:i + 3]}" for i in range(len(padded) - 2)]
    return grams


def hash_ngrams(texts: Sequence[str], buckets: int = BUCKETS, length: int = LENGTH) -> Tensor:
    """``(n, length)`` int64 n-gram ids in ``0..buckets-1``, padded with ``buckets`` (texts longer than ``length`` n-grams are cut)."""
    out = torch.full((len(texts), length), buckets, dtype=torch.long)
    for row, text in enumerate(texts):
        ids = [zlib.crc32(gram.encode("utf-8")) % buckets for gram in ngrams(text)][:length]
        if ids:
            out[row, : len(ids)] = torch.tensor(ids)
    return out


class HashingEncoder(nn.Module):
    """Mean of trainable n-gram vectors: ``(n, length)`` ids -> ``(n, dim)`` features (or ``(n, out_features)`` logits).

    Args:
        buckets: hash buckets (the id ``buckets`` is padding, a zero vector).
        dim: feature width.
        out_features: a linear head on top (gradient-based methods); ``None`` for metric methods.
    """

    def __init__(self, buckets: int = BUCKETS, dim: int = 64, out_features: int | None = None) -> None:
        super().__init__()
        self.buckets = buckets
        self.embedding = nn.EmbeddingBag(buckets + 1, dim, mode="mean", padding_idx=buckets)
        nn.init.normal_(self.embedding.weight, std=dim ** -0.5)
        with torch.no_grad():
            self.embedding.weight[buckets].zero_()
        self.head = nn.Linear(dim, out_features) if out_features is not None else None

    def forward(self, ids: Tensor) -> Tensor:
        if torch._C._are_functorch_transforms_active():
            # embedding_bag fails inside torch.func.grad when its weight requires grad (torch 2.13: "Autograd not
            # support dtype: Long"), as in ANIL's inner loop on the head: the same mean by hand (2.4x slower backward)
            vectors = nn.functional.embedding(ids, self.embedding.weight)  # (n, length, dim)
            real = (ids != self.buckets).unsqueeze(-1).to(vectors.dtype)  # (n, length, 1)
            features = (vectors * real).sum(-2) / real.sum(-2).clamp(min=1)
        else:
            features = self.embedding(ids)  # (n, dim); padding ids are left out of the mean
        return features if self.head is None else self.head(features)
