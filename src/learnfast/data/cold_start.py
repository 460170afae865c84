"""Cold-start tasks from a rating log: each user a task, in MeLU's four scenarios split by time.

Lee et al. (2019), MeLU, §4.1: users are existing or new by the time of their first rating; items
existing or new by their release date (MovieLens) — here by release year where the log has one,
else by their first-rating time. One cut time ``T`` (the ``user_quantile`` of users' first-rating
times) then gives:

``train``                meta-training: ratings before ``T`` (existing users on existing items).
``warm``                 existing users on existing items, rated at or after ``T``.
``new-items``            existing users on new items.
``new-users``            new users (first rating at or after ``T``) on existing items.
``new-users-new-items``  new users on new items.

No rating of the last four is ever in ``train`` (new users and new items have none at all). The
users of the held-out scenarios are split once, seeded, into validation (a third) and test users
(the rest); checkpoints are chosen on validation users, results reported on test users.

A task: ``shots`` of one user's ratings in the scenario as support, ``queries`` others as query
(users with fewer than ``shots + queries`` there are skipped). Inputs ``(n, 2 + Fu + Fi + G)``,
float: user index, item index, the user's attribute codes, the item's attribute codes, the item's
multi-hot flags; targets ``(n, 1)`` ratings. The ids let baselines (item means, matrix
factorisation) look items up; MeLU reads only the attributes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..tasks import Task
from .interactions import Interactions

SCENARIOS = ("warm", "new-items", "new-users", "new-users-new-items")
PARTS = ("train", "val", "test")
IDS = 2  # leading input columns: user index, item index


@dataclass(frozen=True)
class ColdStartSplit:
    """The time split of a rating log.

    ``cut_time``: ``T``; ``existing_user (users,)`` / ``existing_item (items,)`` bool;
    ``train``: indices of the meta-training ratings; ``scenarios``: name -> rating indices;
    ``test_user (users,)`` bool: held-out users reported on (the others are validation users).
    """

    data: Interactions
    cut_time: int
    existing_user: Tensor
    existing_item: Tensor
    train: Tensor
    scenarios: dict[str, Tensor]
    test_user: Tensor

    def ratings(self, part: str, scenario: str | None) -> Tensor:
        """Indices of the ratings of ``part`` (train / val / test) in ``scenario`` (ignored for train)."""
        if part not in PARTS:
            raise ValueError(f"part must be one of {PARTS}, got {part!r}")
        if part == "train":
            return self.train
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}; choose one of {', '.join(SCENARIOS)}")
        index = self.scenarios[scenario]
        return index[self.test_user[self.data.user[index]] == (part == "test")]


def first_times(owner: Tensor, timestamp: Tensor, count: int) -> Tensor:
    """The earliest timestamp per owner ``(count,)``, float64 (``inf`` for an owner without ratings)."""
    first = torch.full((count,), math.inf, dtype=torch.float64)
    return first.scatter_reduce(0, owner, timestamp.double(), reduce="amin")


def cold_start_split(
    data: Interactions,
    user_quantile: float = 0.6,
    new_item_year: float | None = 1997,
    item_quantile: float = 0.8,
    seed: int = 0,
) -> ColdStartSplit:
    """Splits ``data`` into meta-training ratings and the four scenarios.

    Args:
        data: the rating log (its timestamps order the ratings).
        user_quantile: ``T`` is this quantile of the users' first-rating times: users first seen
            before ``T`` exist (0.6: 60 % of the users).
        new_item_year: with release years (MovieLens), items released in or after this year are new
            (1997: the last two years of ML-100K's titles, as MeLU's MovieLens-1M split took the
            latest releases); ``None`` or no release years: items first rated at or after the
            ``item_quantile`` of items' first-rating times are new.
        seed: which third of the held-out users validates.
    """
    if not 0.0 < user_quantile < 1.0 or not 0.0 < item_quantile < 1.0:
        raise ValueError(f"user_quantile and item_quantile must lie in (0, 1), got {user_quantile} and {item_quantile}")
    users, items = len(data.user_ids), len(data.item_ids)
    user_first = first_times(data.user, data.timestamp, users)
    cut = torch.quantile(user_first[torch.isfinite(user_first)], user_quantile).item()
    existing_user = user_first < cut
    if new_item_year is not None and data.item_release is not None:
        existing_item = ~(data.item_release >= new_item_year)  # an unknown release year counts as existing
    else:
        item_first = first_times(data.item, data.timestamp, items)
        existing_item = item_first < torch.quantile(item_first[torch.isfinite(item_first)], item_quantile).item()
    old_user, old_item = existing_user[data.user], existing_item[data.item]
    before = data.timestamp.double() < cut
    cells = {
        "warm": old_user & old_item & ~before,
        "new-items": old_user & ~old_item,
        "new-users": ~old_user & old_item,
        "new-users-new-items": ~old_user & ~old_item,
    }
    order = torch.randperm(users, generator=torch.Generator().manual_seed(seed))
    test_user = torch.ones(users, dtype=torch.bool)
    test_user[order[: users // 3]] = False
    return ColdStartSplit(
        data=data, cut_time=int(cut), existing_user=existing_user, existing_item=existing_item,
        train=torch.nonzero(old_user & old_item & before).flatten(),
        scenarios={name: torch.nonzero(mask).flatten() for name, mask in cells.items()}, test_user=test_user,
    )


def rating_inputs(data: Interactions, user: Tensor, item: Tensor, user_codes: Tensor | None = None) -> Tensor:
    """Model inputs ``(n, 2 + Fu + Fi + G)`` for (user, item) pairs ``(n,)``: ids, codes, multi-hot flags.

    ``user_codes (Fu,)``: the attribute codes of a user who is not in ``data`` (``user`` is then -1).
    """
    codes = data.user_codes[user] if user_codes is None else user_codes.expand(len(item), -1)
    return torch.cat([user[:, None].float(), item[:, None].float(), codes.float(),
                      data.item_codes[item].float(), data.item_multi_hot[item]], dim=1)


class ColdStartTasks:
    """Per-user tasks of one part and scenario: ``sample(B, generator) -> Task`` ``(B, shots|queries, ...)``.

    Args:
        split: the time split.
        part: ``"train"`` (meta-training ratings), ``"val"`` or ``"test"`` (held-out users).
        scenario: one of ``SCENARIOS`` (ignored for ``"train"``).
        shots: support ratings per task (K); queries: query ratings per task (MeLU: 10).

    ``users``: the eligible users (at least ``shots + queries`` ratings here), in index order;
    ``user_task(position, generator)`` is the task of ``users[position]``.
    """

    def __init__(self, split: ColdStartSplit, part: str, scenario: str | None, shots: int, queries: int) -> None:
        if shots < 1 or queries < 1:
            raise ValueError(f"shots and queries must be >= 1, got shots={shots}, queries={queries}")
        self.split, self.part, self.scenario, self.shots, self.queries = split, part, scenario, shots, queries
        index = split.ratings(part, scenario)
        owner = split.data.user[index]
        index = index[torch.argsort(owner, stable=True)]
        counts = torch.bincount(split.data.user[index], minlength=len(split.data.user_ids))
        starts = torch.cumsum(counts, 0) - counts
        self.users = torch.nonzero(counts >= shots + queries).flatten()
        if not len(self.users):
            raise ValueError(f"no user has {shots + queries} ratings (shots {shots} + queries {queries}) in the {part} part of "
                             f"scenario {scenario!r}; use fewer shots or queries")
        self._index, self._starts, self._counts = index, starts, counts

    def __len__(self) -> int:
        return len(self.users)

    def _rows(self, user: int, generator: torch.Generator) -> Tensor:
        start, count = self._starts[user].item(), self._counts[user].item()
        pick = torch.randperm(count, generator=generator)[: self.shots + self.queries]
        return self._index[start + pick]

    def user_task(self, position: int, generator: torch.Generator) -> Task:
        """The task of ``users[position]``: a random ``shots`` of their ratings as support, ``queries`` others as query."""
        rows = self._rows(self.users[position].item(), generator)
        data = self.split.data
        x = rating_inputs(data, data.user[rows], data.item[rows])
        y = data.rating[rows, None]
        k = self.shots
        return Task(x[:k], y[:k], x[k:], y[k:])

    def sample(self, batch_size: int, generator: torch.Generator) -> Task:
        """``batch_size`` tasks of users drawn uniformly (with replacement) from ``users``."""
        positions = torch.randint(len(self.users), (batch_size,), generator=generator).tolist()
        tasks = [self.user_task(p, generator) for p in positions]
        return Task(*(torch.stack(fields) for fields in zip(*tasks)))
