"""Learning strategies for tabular classification: a registry of scikit-learn learners and the grid of settings.

A strategy is a learner name from :data:`LEARNERS` plus hyperparameters (:class:`~.kb.Strategy`);
:func:`build` turns it into a fresh estimator (median imputation first, standardisation for the
learners that need it), :func:`cross_validate` scores it on fixed, seeded stratified folds.

Example:
    >>> build(Strategy("knn", {"n_neighbors": 3}))
    Pipeline(steps=[('impute', SimpleImputer(keep_empty_features=True, strategy='median')),
                    ('scale', StandardScaler()), ('learner', KNeighborsClassifier(n_neighbors=3))])
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .kb import Strategy

METRIC = "balanced_accuracy"  # the score of every strategy in the collection: mean recall per class


def _learners() -> dict[str, tuple[Callable[..., Any], bool]]:
    """name -> (estimator class, needs standardised inputs)."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.ensemble import AdaBoostClassifier, ExtraTreesClassifier, HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression, RidgeClassifier
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.svm import SVC
    from sklearn.tree import DecisionTreeClassifier

    return {
        "logreg": (LogisticRegression, True), "ridge": (RidgeClassifier, True), "lda": (LinearDiscriminantAnalysis, False),
        "naive_bayes": (GaussianNB, False), "knn": (KNeighborsClassifier, True), "svc": (SVC, True),
        "tree": (DecisionTreeClassifier, False), "random_forest": (RandomForestClassifier, False),
        "extra_trees": (ExtraTreesClassifier, False), "hist_gbm": (HistGradientBoostingClassifier, False),
        "adaboost": (AdaBoostClassifier, False), "mlp": (MLPClassifier, True),
    }


LEARNERS = ("logreg", "ridge", "lda", "naive_bayes", "knn", "svc", "tree", "random_forest", "extra_trees", "hist_gbm",
            "adaboost", "mlp")

# 25 strategies, 12 learners. Seeds are fixed so a strategy is one deterministic procedure.
GRID: tuple[Strategy, ...] = (
    *(Strategy("logreg", {"C": c, "max_iter": 2000}) for c in (0.01, 0.1, 1.0, 10.0)),
    *(Strategy("ridge", {"alpha": a}) for a in (1.0, 100.0)),
    Strategy("lda", {"solver": "lsqr", "shrinkage": "auto"}),
    Strategy("naive_bayes", {}),
    *(Strategy("knn", {"n_neighbors": k}) for k in (1, 5, 15)),
    *(Strategy("svc", {"C": c, "random_state": 0}) for c in (0.1, 1.0, 10.0)),
    *(Strategy("tree", {"max_depth": d, "random_state": 0}) for d in (2, 5, None)),
    *(Strategy("random_forest", {"n_estimators": 100, "min_samples_leaf": m, "random_state": 0}) for m in (1, 5)),
    *(Strategy("extra_trees", {"n_estimators": 100, "min_samples_leaf": m, "random_state": 0}) for m in (1, 5)),
    *(Strategy("hist_gbm", {"learning_rate": lr, "max_iter": 100, "random_state": 0}) for lr in (0.05, 0.2)),
    Strategy("adaboost", {"n_estimators": 50, "random_state": 0}),
    Strategy("mlp", {"hidden_layer_sizes": [64], "alpha": 0.001, "max_iter": 300, "random_state": 0}),
)


def build(strategy: Strategy):
    """A fresh, unfitted pipeline for ``strategy``; an unknown learner or parameter is a ValueError."""
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    learners = _learners()
    if strategy.learner not in learners:
        raise ValueError(f"unknown learner {strategy.learner!r}; known: {', '.join(LEARNERS)}")
    cls, scaled = learners[strategy.learner]
    params = {k: tuple(v) if isinstance(v, list) else v for k, v in strategy.params.items()}  # JSON lists -> tuples
    try:
        learner = cls(**params)
    except TypeError as err:
        raise ValueError(f"strategy {strategy.key}: {err}") from None
    steps = [("impute", SimpleImputer(strategy="median", keep_empty_features=True))]
    if scaled:
        steps.append(("scale", StandardScaler()))
    return Pipeline([*steps, ("learner", learner)])


def cv_folds(y: np.ndarray, n_folds: int = 5, seed: int = 0) -> list[np.ndarray]:
    """Test indices of stratified, shuffled folds, the same for every strategy on a task."""
    from sklearn.model_selection import StratifiedKFold

    smallest = int(np.bincount(np.unique(y, return_inverse=True)[1]).min())
    if smallest < n_folds:
        raise ValueError(f"the rarest class has {smallest} rows; {n_folds}-fold CV needs at least {n_folds} per class")
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return [test for _, test in splitter.split(np.zeros(len(y)), y)]


@dataclass(frozen=True)
class FoldScores:
    scores: tuple[float, ...]
    seconds: float
    warnings: tuple[str, ...]  # distinct warning categories caught (ConvergenceWarning from a capped max_iter ...)

    @property
    def score(self) -> float:
        return float(np.mean(self.scores))


def cross_validate(strategy: Strategy, x: np.ndarray, y: np.ndarray, folds: list[np.ndarray]) -> FoldScores:
    """Balanced accuracy of ``strategy`` on each fold (trained on the other folds).

    Warnings raised by the learner (a solver that stops at ``max_iter``, collinear features) are
    caught and returned by category name, so one strategy's warning never stops a collection run;
    the score stands as measured.
    """
    from sklearn.metrics import balanced_accuracy_score

    scores, caught = [], set()
    start = time.perf_counter()
    everything = np.arange(len(y))
    for test in folds:
        train = np.setdiff1d(everything, test)
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            model = build(strategy).fit(x[train], y[train])
            scores.append(float(balanced_accuracy_score(y[test], model.predict(x[test]))))
        caught.update(w.category.__name__ for w in seen)
    return FoldScores(tuple(scores), time.perf_counter() - start, tuple(sorted(caught)))
