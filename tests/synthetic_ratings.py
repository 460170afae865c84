"""A small synthetic rating log in the MovieLens-100K layout, written inside a test (never the real data).

60 users rate 25 of 40 items each; user ``u`` starts at time ``1000 u`` and rates every 500 s, so
first-rating times spread evenly and existing users keep rating after the cut. Items 30-39 are
released in 1997-1998 (new), the rest 1990-1996. Ratings come from a user bias plus an item bias
and are integers 1-5.
"""
from __future__ import annotations

from pathlib import Path

import torch

GENRES = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
          "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western"]
OCCUPATIONS = ["artist", "doctor", "engineer", "student", "writer"]
USERS, ITEMS, PER_USER = 60, 40, 25


def write_movielens(root: Path, header: bool = False, seed: int = 0) -> Path:
    """Writes ``root/movielens/ml-100k/u.*``; returns the folder. ``header``: a first line naming the columns (as the shared copy has)."""
    folder = root / "movielens" / "ml-100k"
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    (folder / "u.genre").write_text("".join(f"{name}|{i}\n" for i, name in enumerate(GENRES)))
    (folder / "u.occupation").write_text("".join(f"{name}\n" for name in OCCUPATIONS))
    users = ["user id|age|gender|occupation|zip code\n"] if header else []
    for u in range(1, USERS + 1):
        users.append(f"{u}|{18 + u % 40}|{'MF'[u % 2]}|{OCCUPATIONS[u % len(OCCUPATIONS)]}|{(u * 7919) % 100000:05d}\n")
    (folder / "u.user").write_text("".join(users))
    items = ["movie id | movie title | release date | video release date | IMDb URL | genres\n"] if header else []
    for m in range(1, ITEMS + 1):
        year = 1997 + m % 2 if m > 30 else 1990 + m % 7
        flags = ["1" if (m + j) % 5 == 0 else "0" for j in range(len(GENRES))]
        items.append(f"{m}|Movie {m} ({year})|01-Jan-{year}||http://example.org/{m}|{'|'.join(flags)}\n")
    (folder / "u.item").write_bytes("".join(items).encode("latin-1"))
    user_bias = torch.randn(USERS, generator=g)
    item_bias = torch.randn(ITEMS, generator=g)
    lines = ["user id\titem id\trating\ttimestamp\n"] if header else []
    for u in range(USERS):
        for j, m in enumerate(torch.randperm(ITEMS, generator=g)[:PER_USER].tolist()):
            rating = int(torch.clamp(torch.round(3 + user_bias[u] + item_bias[m]), 1, 5))
            lines.append(f"{u + 1}\t{m + 1}\t{rating}\t{1000 * u + 500 * j}\n")
    (folder / "u.data").write_text("".join(lines))
    return folder
