"""MeLU's user preference estimator: attribute embeddings, then MLP decision layers.

Lee, Im, Jang, Cho & Chung (2019). MeLU: Meta-Learned User Preference Estimator for Cold-Start
Recommendation. KDD.

Every categorical attribute of the user and of the item has its own embedding table (code 0 is
"unknown"); a multi-hot attribute (MovieLens genres) is the mean of its categories' embeddings, as
the paper's genre embedding. The concatenated embeddings go through the decision layers, an MLP
whose output is the predicted rating. In MeLU only the decision layers adapt per user
(``DECISION``); the embeddings are learned globally.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

IDS = 2  # leading input columns (user index, item index; learnfast.data.cold_start) that the network does not read
DECISION = "decision"  # the module whose parameters adapt per user


class ZeroEmbedding(nn.Embedding):
    """An embedding that starts (and re-initialises) at zero: rows never trained stay 0, "no information"."""

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.weight)


class MeLUNet(nn.Module):
    """Attribute embeddings -> decision MLP -> rating.

    Args:
        user_fields: vocabulary size (with the unknown code 0) of each categorical user attribute.
        item_fields: the same for the item attributes.
        multi_hot: width of the item's multi-hot attribute (0: none).
        embedding_dim: width of every embedding (paper: 32).
        hidden: widths of the decision layers before the output unit (paper: 64, 64).
        item_ids: number of items to give an identity embedding (0: none, the paper's network). It
            reads the item index column and starts at zero, so an item never rated in training (every
            new item) keeps a zero vector; an addition to MeLU, for data whose item attributes say
            little about an item (ML-100K: genres and decade only).

    Input ``(N, 2 + len(user_fields) + len(item_fields) + multi_hot)`` float: ids (not read), codes,
    flags; output ``(N, 1)`` predicted ratings.
    """

    def __init__(self, user_fields: Sequence[int], item_fields: Sequence[int], multi_hot: int = 0,
                 embedding_dim: int = 32, hidden: Sequence[int] = (64, 64), item_ids: int = 0) -> None:
        super().__init__()
        if not user_fields and not item_fields and not multi_hot:
            raise ValueError("MeLU embeds user and item attributes, and there are none; give attribute tables "
                             "(interactions_csv(user_attributes=..., item_attributes=...))")
        self.user_fields, self.item_fields, self.multi_hot = tuple(user_fields), tuple(item_fields), multi_hot
        self.user_embeddings = nn.ModuleList(nn.Embedding(v, embedding_dim) for v in self.user_fields)
        self.item_embeddings = nn.ModuleList(nn.Embedding(v, embedding_dim) for v in self.item_fields)
        self.multi_hot_embedding = nn.Linear(multi_hot, embedding_dim, bias=False) if multi_hot else None
        self.item_id_embedding = ZeroEmbedding(item_ids, embedding_dim) if item_ids else None
        width = embedding_dim * (len(self.user_fields) + len(self.item_fields) + (1 if multi_hot else 0) + (1 if item_ids else 0))
        layers: list[nn.Module] = []
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, 1))
        self.decision = nn.Sequential(*layers)

    @property
    def in_features(self) -> int:
        return IDS + len(self.user_fields) + len(self.item_fields) + self.multi_hot

    def forward(self, x: Tensor) -> Tensor:
        codes = x[..., IDS:IDS + len(self.user_fields) + len(self.item_fields)].long()
        tables = [*self.user_embeddings, *self.item_embeddings]
        parts = [table(codes[..., j]) for j, table in enumerate(tables)]
        if self.multi_hot_embedding is not None:
            flags = x[..., IDS + len(tables):]
            parts.append(self.multi_hot_embedding(flags) / flags.sum(-1, keepdim=True).clamp(min=1.0))  # mean of the categories
        if self.item_id_embedding is not None:
            parts.append(self.item_id_embedding(x[..., 1].long()))
        return self.decision(torch.cat(parts, dim=-1))

    def decision_keys(self) -> tuple[str, ...]:
        """Names (as in ``named_parameters()``) of the parameters that adapt per user."""
        return tuple(k for k, _ in self.named_parameters() if k.startswith(DECISION + "."))
