"""Episodes from one alphabet at a time, and how far apart the task embeddings of such episodes are.

A check of a task embedding (e.g. :meth:`learnfast.algorithms.TADAM.embed_task`): episodes whose
classes come from the same Omniglot alphabet should be closer to each other than episodes from
different alphabets. :func:`alphabet_samplers` builds one :class:`EpisodeSampler` per alphabet (a
class split via ``classes=``); :func:`alphabet_distances` embeds episodes of every alphabet and
compares the mean distance of same-alphabet and of different-alphabet pairs.

Example:
    >>> import learnfast as lf
    >>> from learnfast.data import omniglot_split
    >>> tadam = lf.load("zoo/tadam-omniglot.safetensors")               # run from the repository root
    >>> split = omniglot_split("vinyals", "test")                        # needs the Omniglot zips
    >>> samplers = alphabet_samplers(split, EpisodeSpec(20, 1, 1), transform=lambda x: (x.float() / 255).unsqueeze(-3))
    >>> d = alphabet_distances(tadam.embed_task, samplers, episodes=2, generator=torch.Generator().manual_seed(0))
    >>> d.same < d.different
    True
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from ..episodes import EpisodeSampler, EpisodeSpec
from ..tasks import Task
from .omniglot import ClassSplit


@dataclass(frozen=True)
class AlphabetDistances:
    """Mean Euclidean distance between task embeddings of same-alphabet and different-alphabet episode pairs."""

    same: float
    different: float
    same_pairs: int
    different_pairs: int

    @property
    def ratio(self) -> float:
        """``same / different``; below 1 when same-alphabet tasks are closer."""
        return self.same / self.different


def alphabet_samplers(split: ClassSplit, spec: EpisodeSpec, transform=None) -> dict[str, EpisodeSampler]:
    """One episode sampler per alphabet of ``split``: every episode's classes share one alphabet.

    Alphabets with fewer than ``spec.ways`` classes cannot fill an episode and are left out (as the
    sampler leaves out classes too small for ``spec``). Under the ``vinyals`` split the rotated copies
    of a character are classes of its alphabet too.

    Args:
        split: items, labels and each class's alphabet (``omniglot_split``).
        spec: episode shape.
        transform: applied to sampled inputs, e.g. uint8 ``(..., 28, 28)`` -> float ``(..., 1, 28, 28)``.

    Returns:
        ``{alphabet: EpisodeSampler}`` in sorted alphabet order. ``ValueError`` when fewer than two
        alphabets can fill an episode (nothing to compare).
    """
    names = [str(a) for a in split.class_alphabets]  # numpy strings when read from the decode cache
    by_alphabet = {a: torch.tensor([c for c, name in enumerate(names) if name == a]) for a in sorted(set(names))}
    samplers = {
        a: EpisodeSampler(split.images, split.labels, spec, classes=classes, transform=transform)
        for a, classes in by_alphabet.items() if classes.numel() >= spec.ways
    }
    if len(samplers) < 2:
        sizes = {a: c.numel() for a, c in by_alphabet.items()}
        raise ValueError(
            f"only {len(samplers)} alphabet(s) have at least ways={spec.ways} classes (classes per alphabet: {sizes}); "
            f"lower ways or use a split with more alphabets"
        )
    return samplers


def alphabet_distances(
    embed_task: Callable[[Task], Tensor],
    samplers: dict[str, EpisodeSampler],
    episodes: int,
    generator: torch.Generator,
) -> AlphabetDistances:
    """Mean distance between task embeddings of same-alphabet vs different-alphabet episodes.

    Draws ``episodes`` episodes from each alphabet's sampler (in the dict's order, from ``generator``),
    embeds each alphabet's batch with one ``embed_task`` call (without gradients) and takes the
    Euclidean distance of every pair of distinct episodes.

    Args:
        embed_task: batched Task ``(B, ...)`` -> task embeddings ``(B, D)``, e.g. ``TADAM.embed_task``.
        samplers: ``{alphabet: sampler}``, e.g. from :func:`alphabet_samplers`; at least two.
        episodes: episodes per alphabet, at least two (a same-alphabet pair needs two).
        generator: the randomness of the episodes.

    Returns:
        :class:`AlphabetDistances`; ``same < different`` when the embedding tells alphabets apart.
    """
    if episodes < 2:
        raise ValueError(f"episodes must be >= 2 per alphabet (a same-alphabet pair needs two), got {episodes}")
    if len(samplers) < 2:
        raise ValueError(f"need samplers of at least two alphabets to compare, got {len(samplers)}")
    with torch.no_grad():
        embeddings = torch.cat([embed_task(sampler.sample(episodes, generator)) for sampler in samplers.values()])  # (A*E, D)
    alphabet = torch.arange(len(samplers)).repeat_interleave(episodes)  # (A*E,)
    distances = torch.cdist(embeddings.double(), embeddings.double())  # (A*E, A*E)
    distinct = ~torch.eye(alphabet.numel(), dtype=torch.bool)
    same = (alphabet[:, None] == alphabet[None, :]) & distinct
    different = alphabet[:, None] != alphabet[None, :]
    # each unordered pair appears twice in the symmetric matrix; the means are unchanged
    return AlphabetDistances(
        same=distances[same].mean().item(), different=distances[different].mean().item(),
        same_pairs=int(same.sum()) // 2, different_pairs=int(different.sum()) // 2,
    )
