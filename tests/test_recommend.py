"""Rating metrics against hand-computed values, and the baselines on problems with a known answer."""
import math

import pytest
import torch

from learnfast.data.cold_start import cold_start_split, rating_inputs
from learnfast.data.interactions import movielens_100k
from learnfast.recommend.baselines import BiasedMF, item_mean, popularity, user_mean
from learnfast.recommend.metrics import mae, ndcg_at, rmse, user_metrics
from learnfast.recommend.report import cold_start_report, format_report
from learnfast.tasks import Task
from synthetic_ratings import write_movielens


def test_mae_and_rmse_by_hand():
    predicted, actual = torch.tensor([3.0, 4.5, 2.0, 5.0]), torch.tensor([4.0, 4.0, 2.0, 3.0])
    assert mae(predicted, actual) == pytest.approx((1 + 0.5 + 0 + 2) / 4)
    assert rmse(predicted, actual) == pytest.approx(math.sqrt((1 + 0.25 + 0 + 4) / 4))


def test_ndcg_by_hand():
    actual = torch.tensor([5.0, 3.0, 4.0, 1.0])
    predicted = torch.tensor([0.1, 0.9, 0.5, 0.3])  # ranks items 1 (r=3), 2 (r=4), 3 (r=1), 0 (r=5)
    gains = [2**3 - 1, 2**4 - 1, 2**1 - 1]
    dcg3 = gains[0] / math.log2(2) + gains[1] / math.log2(3) + gains[2] / math.log2(4)
    ideal3 = 31 / math.log2(2) + 15 / math.log2(3) + 7 / math.log2(4)  # ratings 5, 4, 3
    assert ndcg_at(predicted, actual, 3) == pytest.approx(dcg3 / ideal3)
    assert ndcg_at(predicted, actual, 1) == pytest.approx(7 / 31)
    assert ndcg_at(actual, actual, 3) == 1.0  # the true order is ideal
    assert ndcg_at(torch.zeros(4), actual, 1) == pytest.approx(1.0)  # ties keep the query order: item 0 (r=5) first
    assert ndcg_at(predicted, torch.zeros(4), 3) == 1.0  # no gain anywhere
    with pytest.raises(ValueError, match="k >= 1"):
        ndcg_at(predicted, actual, 0)
    row = user_metrics(predicted, actual, ranks_only=True)
    assert math.isnan(row["mae"]) and row["ndcg@1"] == pytest.approx(7 / 31)


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    root = tmp_path_factory.mktemp("ratings")
    write_movielens(root)
    return cold_start_split(movielens_100k(root))


def test_item_mean_popularity_and_user_mean_by_hand(split):
    data, train = split.data, split.train
    item = int(data.item[train[0]])
    ratings = data.rating[train][data.item[train] == item]
    mu = data.rating[train].mean()
    x = rating_inputs(data, torch.tensor([0, 0]), torch.tensor([item, item]))
    task = Task(x[:1], torch.tensor([[2.0]]), x, torch.zeros(2, 1))
    assert item_mean(split).predict(task)[0].item() == pytest.approx(((ratings.sum() + 3 * mu) / (len(ratings) + 3)).item())
    assert popularity(split).predict(task)[0].item() == len(ratings)
    assert user_mean().predict(task).tolist() == [2.0, 2.0]


def test_mf_fold_in_recovers_an_exact_low_rank_user():
    """Ratings exactly mu + b_i + p_u . q_i with many users: a new user's fold-in from 6 ratings predicts the rest."""
    g = torch.Generator().manual_seed(0)
    users, items = 200, 30
    p, q, b = torch.randn(users, 2, generator=g), torch.randn(items, 2, generator=g), torch.randn(items, generator=g)
    user, item = torch.meshgrid(torch.arange(users), torch.arange(items), indexing="ij")
    user, item = user.flatten(), item.flatten()
    rating = 3 + b[item] + (p[user] * q[item]).sum(-1)
    mf = BiasedMF.fit(user, item, rating, users, items, reg=1e-3, factors=2, iterations=30)
    new_p = torch.tensor([0.7, -0.4])
    truth = 3 + b + q @ new_p
    x = torch.stack([torch.zeros(items), torch.arange(items).float()], 1)
    task = Task(x[:6], truth[:6, None], x[6:], truth[6:, None])
    assert torch.allclose(mf.predict(task), truth[6:].float(), atol=0.05)


def test_report_has_every_scenario_and_method(split):
    predictors = {"user mean (support)": user_mean(), "popularity": popularity(split)}
    report = cold_start_report(predictors, split, shots=3, queries=4, seed=0)
    assert set(report) == {"warm", "new-items", "new-users", "new-users-new-items"}
    entry = report["new-users"]
    assert entry["users"] > 0 and set(entry["methods"]) == set(predictors)
    assert entry["methods"]["popularity"]["mae"] is None and 0 < entry["methods"]["popularity"]["ndcg@3"] <= 1
    assert entry["methods"]["user mean (support)"]["mae_ci95"] > 0
    assert "new-users (K = 3" in format_report(report, 3)
    again = cold_start_report(predictors, split, shots=3, queries=4, seed=0)
    assert again == report  # fixed, seeded tasks
