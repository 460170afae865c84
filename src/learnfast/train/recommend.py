"""``learnfast predict`` for a rating checkpoint (MeLU): a new user's ranked list from a few ``(item, rating)`` pairs.

The checkpoint's network adapts to the user's ratings (its local update, as at test time) and
predicts a rating for every candidate item; the list is sorted by predicted rating, highest first.
Candidates: the items of a file (one id a line, or a CSV with an ``item`` column), else every item
of the data set the user has not rated.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from ..algorithms import Algorithm
from ..data.cold_start import rating_inputs
from ..data.interactions import InteractionsError, movielens_user, rated_items
from ..tasks import Task
from .build import movielens_split
from .config import RunConfig


def candidate_items(path: str | os.PathLike, data) -> torch.Tensor:
    """Item indices from a file of ids, one a line (a first line ``item`` is a header), or a CSV with an ``item`` column."""
    path = Path(path)
    if not path.is_file():
        raise InteractionsError(f"{path}: no such file; give the candidate item ids one a line, or a CSV with an item column")
    lines = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
    if lines and "," in lines[0]:
        column = [c.strip() for c in lines[0].split(",")].index("item") if "item" in lines[0] else None
        if column is None:
            raise InteractionsError(f"{path}, line 1: a CSV of candidates needs an item column")
        lines = [line.split(",")[column].strip() for line in lines[1:]]
    elif lines and lines[0] == "item":
        lines = lines[1:]
    items = []
    for number, item in enumerate(lines, 1):
        try:
            items.append(data.item_index(item))
        except KeyError as err:
            raise InteractionsError(f"{path}: {err.args[0]}") from None
    if not items:
        raise InteractionsError(f"{path}: no candidate items")
    return torch.tensor(items)


def recommend(
    algorithm: Algorithm,
    cfg: RunConfig,
    ratings: str | os.PathLike,
    candidates: str | os.PathLike | None = None,
    user: dict[str, str] | None = None,
    top: int | None = None,
    inner_steps: int | None = None,
    root: str | os.PathLike | None = None,
) -> list[dict]:
    """The new user's ranked list: ``[{"rank", "item", "title", "predicted_rating"}, ...]``, best first.

    Args:
        algorithm: a restored rating checkpoint (eval mode).
        cfg: its config (which data set's items).
        ratings: the user's ratings, a CSV ``item,rating``.
        candidates: items to rank (default: every item not in ``ratings``).
        user: the user's attributes (``gender``, ``age``, ``occupation``, ``zip``), any left out are unknown.
        top: keep the first ``top`` (default: all).
        inner_steps: adaptation steps (default: the checkpoint's test-time steps).
    """
    data = movielens_split(None if root is None else str(root)).data
    items, values = rated_items(ratings, data)
    if candidates is None:
        keep = torch.ones(len(data.item_ids), dtype=torch.bool)
        keep[items] = False
        query = torch.nonzero(keep).flatten()
    else:
        query = candidate_items(candidates, data)
    codes = movielens_user(user or {}, root)
    none = lambda n: torch.full((n,), -1, dtype=torch.long)  # a user not in the data set
    task = Task(rating_inputs(data, none(len(items)), items, codes), values[:, None],
                rating_inputs(data, none(len(query)), query, codes), torch.zeros(len(query), 1))
    kwargs = {} if inner_steps is None else {"inner_steps": inner_steps}
    predicted = algorithm(task.unsqueeze(), **kwargs)[0, :, 0].detach()
    order = torch.sort(predicted, descending=True, stable=True).indices[:top]
    return [{"rank": r + 1, "item": data.item_ids[query[i]], "title": data.item_names[query[i]],
             "predicted_rating": predicted[i].item()} for r, i in enumerate(order.tolist())]
