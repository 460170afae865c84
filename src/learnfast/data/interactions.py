"""Rating logs: the MovieLens-100K layout and a user's own ``(user, item, rating[, timestamp])`` CSV.

Both readers return :class:`Interactions`: ratings as parallel tensors over dense user and item
indices, and categorical attributes of users and items as integer codes (0 = unknown), the form
MeLU's attribute embeddings take (``learnfast.models.melu``).

MovieLens-100K (GroupLens; research use only, never redistributed: keep it outside the project)
is read from ``<root>/movielens/ml-100k/``: ``u.data`` (tab-separated user, item, rating,
timestamp), ``u.item`` (``|``-separated; id, title, release date, video date, URL, 19 genre flags),
``u.user`` (id, age, gender, occupation, zip), ``u.genre`` and ``u.occupation``. A header line is
allowed on the first line of each file. Attributes, the MovieLens ones of MeLU that ML-100K has:
users gender, age (MovieLens-1M's 7 age groups), occupation, first zip digit; items release decade
and genres (multi-hot). MeLU's MovieLens-1M items also had MPAA rate, director and actors (from
IMDb); ML-100K has none of these.

Every bad line is an :class:`InteractionsError` naming the file and the line: a wrong number of
fields, a non-numeric id, rating or timestamp, a rating of an item or user the attribute tables
do not list.
"""
from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from .labelled import DataError
from .root import data_root, where_looked

FOLDER = "movielens/ml-100k"
OCCUPATIONS, GENRES = 21, 19  # as u.occupation and u.genre list them; the model's vocabularies are sized by these
AGE_GROUPS = (18, 25, 35, 45, 50, 56)  # MovieLens-1M's bins: under 18, 18-24, 25-34, 35-44, 45-49, 50-55, 56+
DECADES = (1930, 1940, 1950, 1960, 1970, 1980, 1990)  # release decade bins: before 1930, 1930s, ..., 1990s


MOVIELENS_USER_FIELDS = (("gender", 3), ("age", len(AGE_GROUPS) + 2), ("occupation", OCCUPATIONS + 1), ("zip", 11))
MOVIELENS_ITEM_FIELDS = (("decade", len(DECADES) + 2),)


class InteractionsError(DataError):
    """A rating log or attribute table cannot be read; the message names the file, the line and the fix."""


@dataclass(frozen=True)
class Interactions:
    """Ratings over dense indices, and categorical attributes as integer codes (0 = unknown).

    Fields:
        user ``(n,)``, item ``(n,)``: indices into ``user_ids`` / ``item_ids``.
        rating ``(n,)`` float; timestamp ``(n,)`` int64 (seconds; all 0 when the log has none).
        user_ids, item_ids: the ids as written in the files; item_names: titles (or the ids).
        user_codes ``(users, Fu)``, item_codes ``(items, Fi)``: attribute codes, 0 = unknown.
        user_fields, item_fields: ``(name, vocabulary size including the unknown code)`` per column.
        item_multi_hot ``(items, G)`` float 0/1 (MovieLens genres; width 0 without).
        item_release ``(items,)`` float year (nan unknown), for the MovieLens release-date split.
    """

    user: Tensor
    item: Tensor
    rating: Tensor
    timestamp: Tensor
    user_ids: list[str]
    item_ids: list[str]
    user_codes: Tensor
    item_codes: Tensor
    user_fields: tuple[tuple[str, int], ...]
    item_fields: tuple[tuple[str, int], ...]
    item_multi_hot: Tensor
    item_names: list[str] = field(default_factory=list)
    item_release: Tensor | None = None
    source: str = "arrays"

    @property
    def num_ratings(self) -> int:
        return self.rating.numel()

    def item_index(self, item_id: str) -> int:
        """The dense index of ``item_id`` as written in the files; a ``KeyError`` naming the id otherwise."""
        lookup = getattr(self, "_item_lookup", None)
        if lookup is None:
            lookup = {name: i for i, name in enumerate(self.item_ids)}
            object.__setattr__(self, "_item_lookup", lookup)
        if item_id not in lookup:
            raise KeyError(f"item {item_id!r} is not in {self.source} (ids like {', '.join(self.item_ids[:3])})")
        return lookup[item_id]


def _lines(path: Path, encoding: str = "utf-8") -> list[tuple[int, str]]:
    """Non-empty lines with their 1-based numbers; a missing file is an error naming the folder's search."""
    if not path.is_file():
        raise InteractionsError(f"{path}: no such file")
    try:
        text = path.read_bytes().decode(encoding)
    except UnicodeDecodeError as err:
        raise InteractionsError(f"{path}: not {encoding} text (byte {err.start}); save it as {encoding}") from None
    return [(n, line.rstrip("\r")) for n, line in enumerate(text.split("\n"), 1) if line.strip()]


def _is_header(number: int, first_field: str) -> bool:
    return number == 1 and not first_field.strip().lstrip("-").isdigit()


def _number(text: str, path: Path, line: int, what: str, integer: bool = False) -> float:
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        raise InteractionsError(f"{path}, line {line}: {what} {text.strip()!r} is not {'an integer' if integer else 'a number'}") from None
    if not math.isfinite(value):
        raise InteractionsError(f"{path}, line {line}: {what} {text.strip()!r} is not a finite number")
    return value


def _bucket(value: float, edges: tuple[int, ...]) -> int:
    """Code ``1 + (number of edges <= value)``: 1..len(edges)+1; 0 stays for unknown."""
    return 1 + sum(value >= e for e in edges)


def _user_codes(gender: str, age: float | None, occupation: int, zip_code: str) -> tuple[int, int, int, int]:
    """MovieLens user attributes as codes (0 = unknown): gender, age group, occupation, first zip digit."""
    return (1 if gender == "M" else 2 if gender == "F" else 0, 0 if age is None else _bucket(age, AGE_GROUPS), occupation,
            int(zip_code[0]) + 1 if zip_code[:1].isdigit() else 0)


def movielens_user(attributes: dict[str, str], root: str | os.PathLike | None = None) -> Tensor:
    """A new user's MovieLens attribute codes ``(4,)`` from ``{"gender": "F", "age": "31", "occupation": "writer",
    "zip": "55455"}``; any of them may be left out (unknown)."""
    allowed = ("gender", "age", "occupation", "zip")
    unknown = sorted(set(attributes) - set(allowed))
    if unknown:
        raise InteractionsError(f"unknown user attribute(s) {unknown}; MovieLens users have {', '.join(allowed)}")
    folder = data_root(root, FOLDER) / FOLDER
    occupations = [line.strip() for _, line in _lines(folder / "u.occupation", "latin-1")]
    occupation = attributes.get("occupation")
    if occupation is not None and occupation not in occupations:
        raise InteractionsError(f"occupation {occupation!r} is not one of u.occupation's: {', '.join(occupations)}")
    gender = attributes.get("gender", "")
    if gender not in ("", "M", "F"):
        raise InteractionsError(f"gender {gender!r}: MovieLens records M or F (leave it out for unknown)")
    age = attributes.get("age")
    if age is not None and not age.isdigit():
        raise InteractionsError(f"age {age!r} is not a whole number of years")
    code = 0 if occupation is None else occupations.index(occupation) + 1
    return torch.tensor(_user_codes(gender, None if age is None else float(age), code, attributes.get("zip", "")))


def rated_items(path: str | os.PathLike, data: Interactions) -> tuple[Tensor, Tensor]:
    """A new user's ratings: a CSV with the header ``item,rating``, ids as in ``data``; returns item indices and ratings ``(S,)``."""
    path = Path(path)
    _, rows = _csv_rows(path, ("item", "rating"))
    items, ratings = [], []
    for number, row in rows:
        rating = _number(row["rating"], path, number, "rating")
        try:
            items.append(data.item_index(row["item"]))
        except KeyError as err:
            raise InteractionsError(f"{path}, line {number}: {err.args[0]}") from None
        ratings.append(rating)
    if not items:
        raise InteractionsError(f"{path}: no ratings below the header item,rating")
    if len(set(items)) < len(items):
        raise InteractionsError(f"{path}: an item is rated twice; give each item once")
    return torch.tensor(items), torch.tensor(ratings, dtype=torch.float32)


def movielens_100k(root: str | os.PathLike | None = None) -> Interactions:
    """MovieLens-100K from ``<root>/movielens/ml-100k/`` (``root``: ``learnfast.data.data_root``'s search).

    Returns:
        :class:`Interactions` with 100,000 ratings (1-5) of 943 users on 1682 items; user fields
        gender, age, occupation, zip (first digit); item field decade; 19 genre flags.
    """
    folder = data_root(root, FOLDER) / FOLDER
    if not (folder / "u.data").is_file():
        raise InteractionsError(f"MovieLens-100K not found: {where_looked(root, FOLDER)}; it needs u.data, u.item, u.user, "
                                f"u.genre and u.occupation from https://grouplens.org/datasets/movielens/100k/ (research use only)")
    occupations = [line.strip() for _, line in _lines(folder / "u.occupation", "latin-1")]
    genres = [line.split("|")[0] for _, line in _lines(folder / "u.genre", "latin-1")]
    occupation_code = {name: i + 1 for i, name in enumerate(occupations)}
    if len(occupations) > OCCUPATIONS or len(genres) != GENRES:
        raise InteractionsError(f"{folder}: u.occupation lists {len(occupations)} occupations and u.genre {len(genres)} genres; "
                                f"MovieLens-100K has {OCCUPATIONS} and {GENRES}")

    user_ids, user_rows = [], []
    path = folder / "u.user"
    for number, line in _lines(path, "latin-1"):
        fields = line.split("|")
        if _is_header(number, fields[0]):
            continue
        if len(fields) != 5:
            raise InteractionsError(f"{path}, line {number}: {len(fields)} fields, expected 5 (id|age|gender|occupation|zip)")
        age = _number(fields[1], path, number, "age", integer=True)
        if fields[3] not in occupation_code:
            raise InteractionsError(f"{path}, line {number}: occupation {fields[3]!r} is not listed in u.occupation")
        user_ids.append(str(int(_number(fields[0], path, number, "user id", integer=True))))
        user_rows.append(_user_codes(fields[2], age, occupation_code[fields[3]], fields[4]))

    item_ids, item_names, item_rows, flags, release = [], [], [], [], []
    path = folder / "u.item"
    for number, line in _lines(path, "latin-1"):
        fields = line.split("|")
        if _is_header(number, fields[0]):
            continue
        if len(fields) != 5 + len(genres):
            raise InteractionsError(f"{path}, line {number}: {len(fields)} fields, expected {5 + len(genres)} "
                                    f"(id|title|release date|video date|URL and {len(genres)} genre flags of u.genre)")
        year = float(fields[2][-4:]) if fields[2][-4:].isdigit() else math.nan
        item_ids.append(str(int(_number(fields[0], path, number, "item id", integer=True))))
        item_names.append(fields[1])
        item_rows.append((0 if math.isnan(year) else _bucket(year, DECADES),))
        flags.append([_number(f, path, number, "genre flag", integer=True) for f in fields[5:]])
        release.append(year)

    users = {u: i for i, u in enumerate(user_ids)}
    items = {m: i for i, m in enumerate(item_ids)}
    user, item, rating, stamp = [], [], [], []
    path = folder / "u.data"
    for number, line in _lines(path):
        fields = line.split("\t")
        if _is_header(number, fields[0]):
            continue
        if len(fields) != 4:
            raise InteractionsError(f"{path}, line {number}: {len(fields)} tab-separated fields, expected 4 (user, item, rating, timestamp)")
        u = str(int(_number(fields[0], path, number, "user id", integer=True)))
        m = str(int(_number(fields[1], path, number, "item id", integer=True)))
        r = _number(fields[2], path, number, "rating")
        t = _number(fields[3], path, number, "timestamp", integer=True)
        if u not in users:
            raise InteractionsError(f"{path}, line {number}: user {u} is not in u.user")
        if m not in items:
            raise InteractionsError(f"{path}, line {number}: item {m} is not in u.item")
        user.append(users[u])
        item.append(items[m])
        rating.append(r)
        stamp.append(t)
    if not rating:
        raise InteractionsError(f"{path}: no ratings")
    return Interactions(
        user=torch.tensor(user), item=torch.tensor(item), rating=torch.tensor(rating, dtype=torch.float32),
        timestamp=torch.tensor(stamp, dtype=torch.int64), user_ids=user_ids, item_ids=item_ids,
        user_codes=torch.tensor(user_rows, dtype=torch.long), item_codes=torch.tensor(item_rows, dtype=torch.long),
        user_fields=MOVIELENS_USER_FIELDS, item_fields=MOVIELENS_ITEM_FIELDS,
        item_multi_hot=torch.tensor(flags, dtype=torch.float32), item_names=item_names,
        item_release=torch.tensor(release, dtype=torch.float64), source=str(folder),
    )


def _csv_rows(path: Path, required: tuple[str, ...]) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    content = _lines(path)  # checks existence and encoding
    reader = csv.DictReader(io.StringIO("\n".join(line for _, line in content), newline=""))
    columns = [c.strip() for c in (reader.fieldnames or [])]
    missing = [c for c in required if c not in columns]
    if missing:
        raise InteractionsError(f"{path}, line {content[0][0]}: the header must name the columns {', '.join(required)} "
                                f"(found {', '.join(columns) or 'none'})")
    numbers = [n for n, _ in content[1:]]
    rows = []
    for number, row in zip(numbers, reader):
        if None in row or any(v is None for v in row.values()):
            raise InteractionsError(f"{path}, line {number}: wrong number of fields, expected {len(columns)} ({', '.join(columns)})")
        rows.append((number, {k.strip(): v.strip() for k, v in row.items()}))
    return columns, rows


def _attribute_table(path: Path, key: str, ids: list[str]) -> tuple[Tensor, tuple[tuple[str, int], ...]]:
    """Codes ``(len(ids), F)`` of every column but ``key`` (each value its own category, sorted; 0 = no row or empty)."""
    columns, rows = _csv_rows(path, (key,))
    names = [c for c in columns if c != key]
    table: dict[str, dict[str, str]] = {}
    for number, row in rows:
        if row[key] in table:
            raise InteractionsError(f"{path}, line {number}: {key} {row[key]!r} appears twice")
        table[row[key]] = row
    fields, codes = [], torch.zeros(len(ids), len(names), dtype=torch.long)
    for j, name in enumerate(names):
        values = sorted({row[name] for row in table.values() if row[name]})
        code = {v: i + 1 for i, v in enumerate(values)}
        fields.append((name, len(values) + 1))
        for i, entity in enumerate(ids):
            value = table.get(entity, {}).get(name, "")
            codes[i, j] = code.get(value, 0)
    return codes, tuple(fields)


def interactions_csv(
    path: str | os.PathLike,
    user_attributes: str | os.PathLike | None = None,
    item_attributes: str | os.PathLike | None = None,
) -> Interactions:
    """A user's rating log: a CSV with the header ``user,item,rating`` and optionally ``timestamp``.

    Args:
        path: the ratings (UTF-8 CSV; ids are any strings; ratings numbers; timestamps integers).
        user_attributes: optional CSV with a ``user`` column and one column per categorical attribute.
        item_attributes: optional CSV with an ``item`` column and one column per categorical attribute.
            Every distinct value of an attribute is its own category; a user or item without a row
            gets the unknown code 0. Without a table every user or item has no attributes.

    Returns:
        :class:`Interactions` (users and items numbered in order of first appearance).
    """
    path = Path(path)
    columns, rows = _csv_rows(path, ("user", "item", "rating"))
    timed = "timestamp" in columns
    user_index: dict[str, int] = {}
    item_index: dict[str, int] = {}
    user, item, rating, stamp = [], [], [], []
    for number, row in rows:
        if not row["user"] or not row["item"]:
            raise InteractionsError(f"{path}, line {number}: empty user or item id")
        rating.append(_number(row["rating"], path, number, "rating"))
        stamp.append(_number(row["timestamp"], path, number, "timestamp", integer=True) if timed else 0)
        user.append(user_index.setdefault(row["user"], len(user_index)))
        item.append(item_index.setdefault(row["item"], len(item_index)))
    if not rating:
        raise InteractionsError(f"{path}: no ratings below the header")
    user_ids, item_ids = list(user_index), list(item_index)
    if user_attributes is not None:
        user_codes, user_fields = _attribute_table(Path(user_attributes), "user", user_ids)
    else:
        user_codes, user_fields = torch.zeros(len(user_ids), 0, dtype=torch.long), ()
    if item_attributes is not None:
        item_codes, item_fields = _attribute_table(Path(item_attributes), "item", item_ids)
    else:
        item_codes, item_fields = torch.zeros(len(item_ids), 0, dtype=torch.long), ()
    return Interactions(
        user=torch.tensor(user), item=torch.tensor(item), rating=torch.tensor(rating, dtype=torch.float32),
        timestamp=torch.tensor(stamp, dtype=torch.int64), user_ids=user_ids, item_ids=item_ids,
        user_codes=user_codes, item_codes=item_codes, user_fields=user_fields, item_fields=item_fields,
        item_multi_hot=torch.zeros(len(item_ids), 0), item_names=item_ids, source=str(path),
    )
