"""The baselines a recommender engineer tries first, fitted on the meta-training ratings only.

Each is a :class:`Predictor`: ``predict(task) -> (Q,)`` predicted ratings for one task's query,
given its support (inputs as ``learnfast.data.cold_start`` builds them: user index, item index,
attributes). Settings that matter are chosen on the validation users of the ``new-users`` scenario
at the same K, never on test users:

``global mean``         the mean training rating.
``item mean``           the item's training mean, damped toward the global mean (3 pseudo-ratings).
``user mean (support)`` the mean of the user's support ratings.
``popularity``          items ranked by their number of training ratings (a ranking, no rating).
``global network``      the MeLU network trained on all training ratings as plain regression
                        (Adam 1e-3, mini-batches of 256, the epoch with the best validation MAE).
``global + fine-tune``  that network's decision layers fine-tuned on the support by SGD (the rate
                        and step count chosen on validation users) — the honest non-meta comparison.
``MF fold-in``          biased matrix factorisation ``mu + b_u + b_i + p_u . q_i`` (10 factors, ALS,
                        L2 strength chosen on validation users); a new user's ``b_u, p_u`` are
                        solved from the support with the items fixed (fold-in); a new item has
                        ``b_i = 0, q_i = 0``.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..data.cold_start import ColdStartSplit, ColdStartTasks, rating_inputs
from ..functional import forward_with, params_of
from ..inner import adapt, sgd
from ..protocol import episode_generator
from ..tasks import Task

SELECTION_SCENARIO = "new-users"
VAL_SEED = 4242  # the validation tasks that choose the baselines' settings
FACTORS, MF_ITERATIONS, MF_REGS = 10, 15, (1.0, 3.0, 10.0, 30.0)
FINE_TUNE_LRS, FINE_TUNE_STEPS = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1), (1, 5, 20)
ITEM_DAMPING = 3.0


@dataclass(frozen=True)
class Predictor:
    """``predict(task) -> (Q,)`` for one (unbatched) task; ``ranks_only``: scores that only rank (no rating error)."""

    predict: Callable[[Task], Tensor]
    ranks_only: bool = False
    setting: str = ""  # what validation chose, for the report


def _items(x: Tensor) -> Tensor:
    return x[:, 1].long()


def global_mean(split: ColdStartSplit) -> Predictor:
    mu = split.data.rating[split.train].mean()
    return Predictor(lambda task: mu.expand(task.query_x.shape[0]).clone())


def item_mean(split: ColdStartSplit, damping: float = ITEM_DAMPING) -> Predictor:
    data, train = split.data, split.train
    mu = data.rating[train].mean()
    items = len(data.item_ids)
    sums = torch.zeros(items).index_add_(0, data.item[train], data.rating[train])
    counts = torch.zeros(items).index_add_(0, data.item[train], torch.ones(len(train)))
    means = (sums + damping * mu) / (counts + damping)
    return Predictor(lambda task: means[_items(task.query_x)])


def user_mean() -> Predictor:
    return Predictor(lambda task: task.support_y.mean().expand(task.query_x.shape[0]).clone())


def popularity(split: ColdStartSplit) -> Predictor:
    counts = torch.bincount(split.data.item[split.train], minlength=len(split.data.item_ids)).float()
    return Predictor(lambda task: counts[_items(task.query_x)], ranks_only=True)


def _ridge(features: Tensor, targets: Tensor, owners: Tensor, count: int, reg: float) -> Tensor:
    """Per-owner ridge solutions ``(count, d)`` of ``targets ~ features @ w``; an owner without rows gets 0."""
    d = features.shape[1]
    a = torch.zeros(count, d, d, dtype=features.dtype).index_add_(0, owners, features[:, :, None] * features[:, None, :])
    b = torch.zeros(count, d, dtype=features.dtype).index_add_(0, owners, features * targets[:, None])
    return torch.linalg.solve(a + reg * torch.eye(d, dtype=features.dtype), b)


@dataclass(frozen=True)
class BiasedMF:
    """``mu + b_u + b_i + p_u . q_i`` fitted by alternating ridge regressions (float64)."""

    mu: float
    item_factors: Tensor  # (items, k)
    item_bias: Tensor  # (items,)
    reg: float

    @classmethod
    def fit(cls, user: Tensor, item: Tensor, rating: Tensor, users: int, items: int, reg: float,
            factors: int = FACTORS, iterations: int = MF_ITERATIONS, seed: int = 0) -> "BiasedMF":
        r = rating.double()
        mu = r.mean().item()
        q = 0.1 * torch.randn(items, factors, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        b_i = torch.zeros(items, dtype=torch.float64)
        ones = torch.ones(len(r), 1, dtype=torch.float64)
        for _ in range(iterations):
            w = _ridge(torch.cat([q[item], ones], 1), r - mu - b_i[item], user, users, reg)
            p, b_u = w[:, :-1], w[:, -1]
            w = _ridge(torch.cat([p[user], ones], 1), r - mu - b_u[user], item, items, reg)
            q, b_i = w[:, :-1], w[:, -1]
        return cls(mu, q, b_i, reg)

    def fold_in(self, items: Tensor, ratings: Tensor) -> tuple[Tensor, Tensor]:
        """A new user's ``(p_u (k,), b_u)`` from their rated ``items (S,)`` and ``ratings (S,)``, items held fixed."""
        features = torch.cat([self.item_factors[items], torch.ones(len(items), 1, dtype=torch.float64)], 1)
        w = _ridge(features, ratings.double() - self.mu - self.item_bias[items], torch.zeros_like(items), 1, self.reg)[0]
        return w[:-1], w[-1]

    def predict(self, task: Task) -> Tensor:
        p, b_u = self.fold_in(_items(task.support_x), task.support_y.flatten())
        items = _items(task.query_x)
        return (self.mu + b_u + self.item_bias[items] + self.item_factors[items] @ p).float()


def validation_tasks(split: ColdStartSplit, shots: int, queries: int) -> list[Task]:
    """The fixed validation tasks (new users, validation part) that choose the baselines' settings."""
    source = ColdStartTasks(split, "val", SELECTION_SCENARIO, shots, queries)
    return [source.user_task(i, episode_generator(VAL_SEED, i)) for i in range(len(source))]


def validation_mae(predict: Callable[[Task], Tensor], tasks: list[Task]) -> float:
    return torch.stack([(predict(t) - t.query_y.flatten()).abs().mean() for t in tasks]).mean().item()


def matrix_factorisation(split: ColdStartSplit, tasks: list[Task], seed: int = 0) -> Predictor:
    data, train = split.data, split.train
    fits = [BiasedMF.fit(data.user[train], data.item[train], data.rating[train], len(data.user_ids), len(data.item_ids), reg, seed=seed)
            for reg in MF_REGS]
    best = min(fits, key=lambda mf: validation_mae(mf.predict, tasks))
    return Predictor(best.predict, setting=f"L2 {best.reg:g}")


def _reinitialised(template: nn.Module, seed: int) -> nn.Module:
    model = copy.deepcopy(template)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in model.modules():
            if hasattr(module, "reset_parameters"):
                module.reset_parameters()
    return model


def global_network(template: nn.Module, split: ColdStartSplit, tasks: list[Task], seed: int = 0,
                   epochs: int = 20, batch_size: int = 256, lr: float = 1e-3) -> nn.Module:
    """``template``'s architecture, freshly initialised (``seed``) and trained on every training rating as plain
    regression; returns the epoch's weights with the lowest validation MAE."""
    data, train = split.data, split.train
    x, y = rating_inputs(data, data.user[train], data.item[train]), data.rating[train, None]
    model = _reinitialised(template, seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    predict = lambda task: model(task.query_x)[:, 0]
    best, best_state = float("inf"), copy.deepcopy(model.state_dict())
    for _ in range(epochs):
        model.train()
        for rows in torch.randperm(len(y), generator=generator).split(batch_size):
            optimizer.zero_grad()
            F.mse_loss(model(x[rows]), y[rows]).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            score = validation_mae(predict, tasks)
        if score < best:
            best, best_state = score, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    return model.eval()


def fine_tuned(model: nn.Module, lr: float, steps: int) -> Callable[[Task], Tensor]:
    """``model``'s decision layers adapted on the support by ``steps`` SGD steps at ``lr``, then the query predicted."""
    params = {k: v.detach() for k, v in params_of(model).items()}
    keys = model.decision_keys()

    def predict(task: Task) -> Tensor:
        fast = adapt(model, params, task.support_x, task.support_y, F.mse_loss, steps, sgd(lr), adapt_keys=keys, memory="first-order")
        return forward_with(model, fast, task.query_x)[:, 0].detach()

    return predict


def fit_baselines(split: ColdStartSplit, template: nn.Module, shots: int, queries: int, seed: int = 0) -> dict[str, Predictor]:
    """Every baseline, fitted on ``split.train`` with its settings chosen on the validation users at ``shots``."""
    tasks = validation_tasks(split, shots, queries)
    network = global_network(template, split, tasks, seed=seed)
    plain = lambda task: network(task.query_x)[:, 0].detach()
    tuned = min(((lr, steps) for lr in FINE_TUNE_LRS for steps in FINE_TUNE_STEPS),
                key=lambda setting: validation_mae(fine_tuned(network, *setting), tasks))
    return {
        "global mean": global_mean(split),
        "item mean": item_mean(split),
        "user mean (support)": user_mean(),
        "popularity": popularity(split),
        "global network": Predictor(plain),
        "global + fine-tune": Predictor(fine_tuned(network, *tuned), setting=f"{tuned[1]} steps at lr {tuned[0]:g}"),
        "MF fold-in": matrix_factorisation(split, tasks, seed=seed),
    }
