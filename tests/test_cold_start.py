"""MeLU's time split and per-user tasks: no held-out rating ever reaches meta-training; tasks are one user's, seeded."""
import os
from pathlib import Path

import pytest
import torch

from learnfast.data.cold_start import SCENARIOS, ColdStartTasks, cold_start_split, first_times
from learnfast.data.interactions import movielens_100k
from learnfast.protocol import episode_generator
from synthetic_ratings import write_movielens


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    root = tmp_path_factory.mktemp("ratings")
    write_movielens(root)
    return cold_start_split(movielens_100k(root))


def check_no_leakage(split):
    data = split.data
    train = set(split.train.tolist())
    held_out = [set(split.scenarios[s].tolist()) for s in SCENARIOS]
    # every rating is in exactly one of train and the four scenarios
    assert sum(len(h) for h in held_out) + len(train) == data.num_ratings
    assert set().union(train, *held_out) == set(range(data.num_ratings))
    assert all(not (train & h) for h in held_out)
    # meta-training holds only ratings before the cut, of existing users on existing items
    assert (data.timestamp[split.train] < split.cut_time).all()
    assert split.existing_user[data.user[split.train]].all() and split.existing_item[data.item[split.train]].all()
    # new users and new items have no training rating at all
    trained_users, trained_items = set(data.user[split.train].tolist()), set(data.item[split.train].tolist())
    assert not trained_users & set(torch.nonzero(~split.existing_user).flatten().tolist())
    assert not trained_items & set(torch.nonzero(~split.existing_item).flatten().tolist())
    # a user is first seen before the cut exactly when they exist
    first = first_times(data.user, data.timestamp, len(data.user_ids))
    assert torch.equal(split.existing_user, first < split.cut_time)
    # the task sources of val / test draw only held-out ratings of their own users
    for scenario in SCENARIOS:
        for part in ("val", "test"):
            rows = split.ratings(part, scenario)
            assert not set(rows.tolist()) & train
            assert (split.test_user[data.user[rows]] == (part == "test")).all()


def test_time_split_never_leaks_held_out_ratings_into_meta_training(split):
    check_no_leakage(split)
    assert len(split.train) and all(len(split.scenarios[s]) for s in SCENARIOS)


def test_time_split_of_the_real_movielens_100k():
    root = Path(os.environ.get("LEARNFAST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    if not (root / "movielens" / "ml-100k" / "u.data").is_file():
        pytest.skip("MovieLens-100K not found; set LEARNFAST_DATA")
    check_no_leakage(cold_start_split(movielens_100k(root)))


def test_items_split_by_first_rating_time_without_release_years(split):
    by_time = cold_start_split(split.data, new_item_year=None, item_quantile=0.5)
    item_first = first_times(split.data.item, split.data.timestamp, len(split.data.item_ids))
    assert torch.equal(by_time.existing_item, item_first < torch.quantile(item_first, 0.5))
    check_no_leakage(by_time)


def test_a_task_is_one_users_ratings_support_and_query_disjoint(split):
    source = ColdStartTasks(split, "test", "new-users", shots=3, queries=4)
    data = split.data
    for position in range(len(source)):
        task = source.user_task(position, episode_generator(0, position))
        x = torch.cat([task.support_x, task.query_x])
        assert task.support_x.shape == (3, 2 + 4 + 1 + 19) and task.query_y.shape == (4, 1)
        assert (x[:, 0] == source.users[position]).all()  # one user
        assert len(set(x[:, 1].tolist())) == 7  # seven different items: support and query disjoint
        for row, rating in zip(x, torch.cat([task.support_y, task.query_y])):
            match = (data.user == int(row[0])) & (data.item == int(row[1]))
            assert data.rating[match].item() == rating.item()
            assert split.scenarios["new-users"].tolist().count(int(torch.nonzero(match))) == 1


def test_sampling_is_seeded_and_shaped(split):
    source = ColdStartTasks(split, "train", None, shots=2, queries=3)
    a = source.sample(5, torch.Generator().manual_seed(1))
    b = source.sample(5, torch.Generator().manual_seed(1))
    assert a.support_x.shape == (5, 2, 26) and a.query_y.shape == (5, 3, 1)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert set(a.support_x[:, :, 0].flatten().tolist()) <= set(split.data.user[split.train].tolist())


def test_too_few_ratings_and_bad_names_are_errors(split):
    with pytest.raises(ValueError, match="no user has 100 ratings"):
        ColdStartTasks(split, "test", "warm", shots=90, queries=10)
    with pytest.raises(ValueError, match="unknown scenario 'cold'"):
        ColdStartTasks(split, "test", "cold", shots=1, queries=1)
    with pytest.raises(ValueError, match="user_quantile and item_quantile must lie in"):
        cold_start_split(split.data, user_quantile=1.0)
