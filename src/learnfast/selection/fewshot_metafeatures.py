"""Meta-features of a few-shot classification task, from the support sets of a few of its episodes.

:class:`FewShotFeaturizer` maps a batch of episodes ``Task (B, ...)`` of one task family to a dict
of floats, the mean over the episodes of:

* ``ways``, ``shots``;
* image statistics of the support images: ``pixel_mean``, ``pixel_std``, ``ink_fraction`` (pixels
  above 0.5);
* support-embedding statistics under a fixed encoder (e.g. the zoo ProtoNet's Conv4):
  ``embedding_norm`` (mean norm), ``prototype_distance`` / ``prototype_distance_min`` (mean and smallest
  distance between two class prototypes), ``class_spread`` (mean distance of a support item to its
  prototype; 0 at one shot) and ``spread_ratio`` (``class_spread / prototype_distance``);
* the distance of the task's classes to the meta-training classes: ``train_class_distance`` /
  ``train_class_distance_max`` (mean and largest, over the episode's prototypes, of the distance to
  the nearest meta-training class mean), relative to ``prototype_distance`` of meta-training
  episodes (so 1.0 is as far as two training classes usually are);
* the task embedding of ``embed_task`` (``TADAM.embed_task``): ``task_embedding_norm``, and its distance
  (``task_embedding_distance``) and cosine similarity (``task_embedding_cosine``) to the mean task
  embedding of meta-training episodes.

The encoder normalises with batch statistics (learnfast's Conv4 keeps no running statistics), so
support images are embedded in one batch together with a fixed ``reference`` batch of meta-training
images: the statistics are then nearly those of the training data, the same for every task, and
not those of the task's few images. Everything is deterministic (no sampling) and finite (ratios
and cosines of zero vectors are 0).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from ..functional import prototypes
from ..tasks import Task

EPS = 1e-12
FEATURES = ("ways", "shots", "pixel_mean", "pixel_std", "ink_fraction", "embedding_norm", "prototype_distance",
            "prototype_distance_min", "class_spread", "spread_ratio", "train_class_distance", "train_class_distance_max",
            "task_embedding_norm", "task_embedding_distance", "task_embedding_cosine")


def _pairwise(protos: Tensor) -> Tensor:
    """Distances between distinct rows of ``(N, D)``, as a flat ``(N*(N-1)/2,)`` tensor."""
    n = protos.shape[0]
    upper = torch.triu_indices(n, n, offset=1)
    return torch.cdist(protos, protos)[upper[0], upper[1]]


@dataclass
class FewShotFeaturizer:
    """Few-shot meta-features (see the module docstring).

    Args:
        encoder: fixed embedding network ``(n, C, H, W) -> (n, ...)`` (flattened to ``(n, D)``).
        embed_task: batched task embedding ``Task (B, ...) -> (B, Dt)``, e.g. ``TADAM.embed_task``.
        reference: ``(R, C, H, W)`` meta-training images embedded with every support set.
        train_means: ``(M, D)`` mean embeddings of the meta-training classes (:meth:`class_means`).
        train_prototype_distance: mean ``prototype_distance`` of meta-training episodes (the scale of
            ``train_class_distance``).
        train_task_embedding: ``(Dt,)`` mean task embedding of meta-training episodes.
    """

    encoder: nn.Module
    embed_task: Callable[[Task], Tensor]
    reference: Tensor
    train_means: Tensor
    train_prototype_distance: float
    train_task_embedding: Tensor

    @torch.no_grad()
    def embed(self, images: Tensor) -> Tensor:
        """``(n, C, H, W) -> (n, D)``, normalised together with the reference batch."""
        z = self.encoder(torch.cat([self.reference, images])).flatten(1)
        return z[self.reference.shape[0]:].double()

    @torch.no_grad()
    def class_means(self, images: Tensor, labels: Tensor, chunk: int) -> Tensor:
        """Mean embedding per class ``(M, D)`` of ``images (n, C, H, W)`` with labels ``0..M-1``, embedded ``chunk`` at a time."""
        z = torch.cat([self.embed(images[i:i + chunk]) for i in range(0, len(images), chunk)])
        ways = int(labels.max()) + 1
        return prototypes(z[None], labels[None], ways)[0]

    @torch.no_grad()
    def __call__(self, episodes: Task) -> dict[str, float]:
        """Meta-features of the task family whose episodes ``(B, ...)`` are given (only support sets are read)."""
        if episodes.support_x.dim() != self.reference.dim() + 1:
            raise ValueError(f"pass a batch of episodes, support_x (B, S, *item) with items shaped like the reference "
                             f"{tuple(self.reference.shape[1:])}; got support_x {tuple(episodes.support_x.shape)}")
        ways = int(episodes.support_y.max()) + 1
        s = episodes.support_x.shape[1]
        rows = []
        for x, y in zip(episodes.support_x, episodes.support_y):
            x = x.float()
            z = self.embed(x)  # (S, D)
            protos = prototypes(z[None], y[None], ways)[0]  # (N, D)
            between = _pairwise(protos) if ways > 1 else torch.zeros(1, dtype=z.dtype)
            spread = (z - protos[y]).norm(dim=1).mean()
            nearest_train = torch.cdist(protos, self.train_means.to(z.dtype)).min(dim=1).values  # (N,)
            scale = max(self.train_prototype_distance, EPS)
            rows.append([
                float(ways), s / ways, x.mean().item(), x.std(unbiased=False).item(), (x > 0.5).double().mean().item(),
                z.norm(dim=1).mean().item(), between.mean().item(), between.min().item(), spread.item(),
                spread.item() / max(between.mean().item(), EPS), nearest_train.mean().item() / scale, nearest_train.max().item() / scale,
            ])
        t = self.embed_task(episodes).double()  # (B, Dt); reads the support sets only
        mean_train = self.train_task_embedding.double()
        cosine = (t @ mean_train) / (t.norm(dim=1) * mean_train.norm()).clamp_min(EPS)
        values = torch.tensor(rows, dtype=torch.float64).mean(0).tolist() + [
            t.norm(dim=1).mean().item(), (t - mean_train).norm(dim=1).mean().item(), cosine.mean().item()]
        return dict(zip(FEATURES, values))
