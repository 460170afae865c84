"""Rating-log readers: MovieLens-100K's layout and a user's CSV, on synthetic files; bad lines name the file and line."""
import math

import pytest
import torch

from learnfast.data.interactions import (AGE_GROUPS, GENRES, InteractionsError, interactions_csv, movielens_100k,
                                         movielens_user, rated_items)
from synthetic_ratings import ITEMS, PER_USER, USERS, write_movielens


@pytest.mark.parametrize("header", [False, True])
def test_reads_the_movielens_layout(tmp_path, header):
    write_movielens(tmp_path, header=header)
    data = movielens_100k(tmp_path)
    assert data.num_ratings == USERS * PER_USER
    assert len(data.user_ids) == USERS and len(data.item_ids) == ITEMS
    assert data.item_multi_hot.shape == (ITEMS, GENRES)
    assert data.user_codes.shape == (USERS, 4) and data.item_codes.shape == (ITEMS, 1)
    # user 1: age 19 (group 18-24 -> code 2), gender F (u % 2 = 1 -> "F" -> 2), occupation "doctor" (2nd -> 2), zip 07919 -> digit 0 -> 1
    assert data.user_codes[0].tolist() == [2, 2, 2, 1]
    assert data.item_release[30].item() == 1998 and data.item_names[0] == "Movie 1 (1991)"
    assert torch.all(data.user_codes < torch.tensor([v for _, v in data.user_fields]))
    assert data.rating.min() >= 1 and data.rating.max() <= 5


def _corrupt(tmp_path, name: str, line: int, text: str):
    folder = write_movielens(tmp_path)
    lines = (folder / name).read_text(encoding="latin-1").splitlines(keepends=True)
    lines[line - 1] = text + "\n"
    (folder / name).write_text("".join(lines), encoding="latin-1")


@pytest.mark.parametrize("name, line, text, message", [
    ("u.data", 3, "1\t2\t3", "u.data, line 3: 3 tab-separated fields, expected 4"),
    ("u.data", 5, "1\t999\t4\t100", "u.data, line 5: item 999 is not in u.item"),
    ("u.data", 7, "1\t2\tfour\t100", "u.data, line 7: rating 'four' is not a number"),
    ("u.data", 8, "1\t2\t4\tnoon", "u.data, line 8: timestamp 'noon' is not an integer"),
    ("u.data", 9, "77\t2\t4\t100", "u.data, line 9: user 77 is not in u.user"),
    ("u.user", 4, "4|40|M|astronaut|12345", "u.user, line 4: occupation 'astronaut' is not listed in u.occupation"),
    ("u.item", 2, "2|Short line|01-Jan-1995", "u.item, line 2: 3 fields, expected 24"),
])
def test_bad_lines_name_the_file_and_line(tmp_path, name, line, text, message):
    _corrupt(tmp_path, name, line, text)
    with pytest.raises(InteractionsError, match=message):
        movielens_100k(tmp_path)


def test_a_missing_folder_says_where_it_looked(tmp_path):
    with pytest.raises(InteractionsError, match="MovieLens-100K not found.*research use only"):
        movielens_100k(tmp_path)


def test_users_csv_with_attribute_tables(tmp_path):
    (tmp_path / "r.csv").write_text("user,item,rating,timestamp\nann,book,4,10\nbob,book,2.5,20\nann,film,5,30\n")
    (tmp_path / "u.csv").write_text("user,country\nann,fr\nbob,de\n")
    (tmp_path / "i.csv").write_text("item,kind,year\nbook,paper,2001\n")
    data = interactions_csv(tmp_path / "r.csv", tmp_path / "u.csv", tmp_path / "i.csv")
    assert data.user_ids == ["ann", "bob"] and data.item_ids == ["book", "film"]
    assert data.user.tolist() == [0, 1, 0] and data.item.tolist() == [0, 0, 1]
    assert data.rating.tolist() == [4.0, 2.5, 5.0] and data.timestamp.tolist() == [10, 20, 30]
    assert data.user_fields == (("country", 3),) and data.user_codes.flatten().tolist() == [2, 1]  # sorted: de=1, fr=2
    assert data.item_fields == (("kind", 2), ("year", 2))
    assert data.item_codes.tolist() == [[1, 1], [0, 0]]  # film has no row: unknown


@pytest.mark.parametrize("content, message", [
    ("user,item\nann,book\n", "line 1: the header must name the columns user, item, rating"),
    ("user,item,rating\nann,book,4\nbob,film,great\n", r"r.csv, line 3: rating 'great' is not a number"),
    ("user,item,rating\nann,book,4\nbob,film\n", "r.csv, line 3: wrong number of fields, expected 3"),
    ("user,item,rating\nann,book,nan\n", "r.csv, line 2: rating 'nan' is not a finite number"),
    ("user,item,rating\n", "no ratings below the header"),
])
def test_users_csv_errors(tmp_path, content, message):
    (tmp_path / "r.csv").write_text(content)
    with pytest.raises(InteractionsError, match=message):
        interactions_csv(tmp_path / "r.csv")


def test_a_new_users_ratings_and_attributes(tmp_path):
    write_movielens(tmp_path)
    data = movielens_100k(tmp_path)
    (tmp_path / "mine.csv").write_text("item,rating\n3,5\n10,1\n")
    items, ratings = rated_items(tmp_path / "mine.csv", data)
    assert items.tolist() == [2, 9] and ratings.tolist() == [5.0, 1.0]
    (tmp_path / "bad.csv").write_text("item,rating\n3,5\n4444,1\n")
    with pytest.raises(InteractionsError, match=r"bad.csv, line 3: item '4444' is not in"):
        rated_items(tmp_path / "bad.csv", data)
    codes = movielens_user({"gender": "M", "age": "30", "occupation": "writer"}, tmp_path)
    assert codes.tolist() == [1, 1 + sum(30 >= a for a in AGE_GROUPS), 5, 0]
    with pytest.raises(InteractionsError, match="occupation 'pilot' is not one of"):
        movielens_user({"occupation": "pilot"}, tmp_path)
    assert not math.isnan(data.item_release[0].item())
