"""The selection loop: rank strategies, run the top ones on the new task under a budget, record, re-rank.

Each round takes the ``per_round`` best-ranked strategies not yet run on the task and races them by
successive halving (Jamieson & Talwalkar 2016) on the task's own cross-validation folds: every
candidate is scored on 1 fold, the best ``1/eta`` go on to ``eta`` folds, and so on until the
survivors have been scored on all folds. Every score (partial ones too, with ``folds_done``) goes into
the knowledge base; the recommender is refitted on the KB, which now holds this task, and ranks again.

Example:
    >>> from sklearn.datasets import load_iris
    >>> x, y = load_iris(return_X_y=True)
    >>> trials = successive_halving([Strategy("naive_bayes", {}), Strategy("tree", {"max_depth": 1})], x, y, cv_folds(y, 3))
    >>> [(t.strategy.learner, t.folds_done) for t in trials]
    [('naive_bayes', 3), ('tree', 1)]
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .kb import KnowledgeBase, Strategy
from .metafeatures import meta_features
from .recommenders import Ranking, Recommender
from .strategies import METRIC, cross_validate, cv_folds


@dataclass(frozen=True)
class Trial:
    """A strategy's scores on the first ``folds_done`` folds (balanced accuracy)."""

    strategy: Strategy
    fold_scores: tuple[float, ...]
    seconds: float
    warnings: tuple[str, ...] = ()

    @property
    def score(self) -> float:
        return float(np.mean(self.fold_scores))

    @property
    def folds_done(self) -> int:
        return len(self.fold_scores)


def successive_halving(strategies: list[Strategy], x: np.ndarray, y: np.ndarray, folds: list[np.ndarray],
                       eta: int = 2) -> list[Trial]:
    """Race ``strategies`` on ``folds``; returns one trial each, best (most folds, then score) first.

    Rung ``r`` scores the survivors on the first ``min(eta**r, K)`` folds (only the new folds are
    computed); the best ``ceil(n / eta)`` survive; the last rung is always all ``K`` folds.
    """
    if eta < 2:
        raise ValueError(f"eta = {eta} must be >= 2")
    trials = {s.key: Trial(s, (), 0.0) for s in strategies}
    alive = [s.key for s in strategies]
    rung = 0
    while alive:
        n_folds = len(folds) if len(alive) == 1 else min(eta**rung, len(folds))
        for key in alive:
            trial = trials[key]
            new = cross_validate(trial.strategy, x, y, folds[trial.folds_done:n_folds]) if n_folds > trial.folds_done else None
            if new is not None:
                trials[key] = Trial(trial.strategy, trial.fold_scores + new.scores, trial.seconds + new.seconds,
                                    tuple(sorted(set(trial.warnings) | set(new.warnings))))
        if n_folds == len(folds):
            break
        alive = sorted(alive, key=lambda k: -trials[k].score)[: math.ceil(len(alive) / eta)]
        rung += 1
    return sorted(trials.values(), key=lambda t: (-t.folds_done, -t.score))


@dataclass
class LoopResult:
    """Rankings before each round and every trial, in order; ``best`` has the best complete CV score."""

    rankings: list[Ranking] = field(default_factory=list)
    trials: list[Trial] = field(default_factory=list)
    meta_features: dict[str, float] = field(default_factory=dict)

    @property
    def best(self) -> Trial | None:
        complete = [t for t in self.trials if t.folds_done == max(t.folds_done for t in self.trials)]
        return max(complete, key=lambda t: t.score, default=None)


def select_and_run(x: np.ndarray, y: np.ndarray, kb: KnowledgeBase, recommender: Recommender, task: str, *,
                   rounds: int = 2, per_round: int = 4, eta: int = 2, n_folds: int = 5, seed: int = 0,
                   source: str = "", log=None) -> LoopResult:
    """The loop on one task: ``rounds`` x (fit recommender on the KB, rank, race the top new ones, record).

    Strategies with any result for ``task`` in the KB (a race's losers too) count as tried: they are
    not raced again, and a rerun resumes.

    Args:
        x: ``(rows, features)`` with NaN for missing. y: ``(rows,)`` integer classes.
        kb: where results are read from and written to. task: the task's name in the KB.
    """
    result = LoopResult(meta_features=meta_features(x, y, seed=seed))
    kb.add_task(task, result.meta_features, source)
    folds = cv_folds(y, n_folds, seed)
    for round_ in range(rounds):
        tried = {r.strategy.key for r in kb.results(METRIC, task=task)}  # a race's losers too: not re-raced
        ranking = recommender.fit(kb).rank(result.meta_features)
        result.rankings.append(ranking)
        candidates = [s for s, _ in ranking if s.key not in tried][:per_round]
        if not candidates:
            break
        trials = successive_halving(candidates, x, y, folds, eta)
        for trial in trials:
            kb.add_result(task, trial.strategy, score=trial.score, seconds=trial.seconds, metric=METRIC,
                          folds_done=trial.folds_done, folds_total=n_folds, cv_seed=seed,
                          info={"fold_scores": trial.fold_scores, "warnings": trial.warnings, "rows": len(y),
                                "round": round_, "recommender": recommender.name})
        result.trials.extend(trials)
        if log is not None:
            best = trials[0]
            print(f"round {round_ + 1}: raced {len(trials)} strategies; best {best.strategy.key} "
                  f"{best.score:.4f} on {best.folds_done} folds", file=log, flush=True)
    return result
