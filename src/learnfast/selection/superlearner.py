"""The Super Learner: a cross-validated combination of candidate learners, as scikit-learn estimators.

Every candidate is fitted under K-fold cross-validation; its out-of-fold predictions give its CV risk
(``cv_risks_``) and are the inputs of the combination, which is one of:

* ``"nnls"`` (default): convex weights (``weights_ >= 0``, summing to 1) minimising the squared error
  of the weighted out-of-fold predictions: for regression the MSE; for classification the squared error
  of the combined class *probabilities* against the one-hot labels (the multi-class Brier score), i.e.
  least squares over the simplex on out-of-fold ``predict_proba``, solved exactly up to ``1e-9``
  by non-negative least squares with the sum-to-one row weighted in (Lawson & Hanson).
* ``"discrete"``: all weight on the candidate of lowest CV risk (the "discrete super learner", which
  is cross-validated model selection).
* any scikit-learn estimator: stacking; it is fitted on the out-of-fold predictions (probabilities
  for classification, the first column dropped for two classes, as ``StackingClassifier`` does)
  and ``weights_`` is ``None``.

The CV risk is the same loss: MSE for regression, Brier score for classification. Finally each
candidate is refitted on all the data. The oracle inequality (van der Laan et al. 2007) says that,
asymptotically, the combination does as well as the best of the candidates it may weight.

References:
    van der Laan, Polley & Hubbard, "Super Learner", Statistical Applications in Genetics and
    Molecular Biology 6(1), 2007.

Example:
    >>> from sklearn.datasets import load_iris
    >>> x, y = load_iris(return_X_y=True)
    >>> sl = SuperLearnerClassifier().fit(x, y)
    >>> [name for name, _ in sl.estimators_]
    ['logreg', 'naive_bayes', 'tree', 'knn']
    >>> bool(abs(sl.weights_.sum() - 1) < 1e-9), sl.predict(x[:3]).tolist()
    (True, [0, 0, 0])
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import nnls
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, clone, is_classifier
from sklearn.model_selection import check_cv
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data


def simplex_least_squares(features: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``argmin_w ||features @ w - target||^2`` over ``w >= 0, sum(w) = 1``.

    Args:
        features: ``(n, K)``, one column per candidate. target: ``(n,)``.
    Returns:
        ``(K,)`` convex weights. The sum-to-one constraint is a heavily weighted extra row of a
        non-negative least-squares problem, exact to ~1e-9 relative to the data's scale.
    """
    scale = max(float(np.abs(features).max(initial=0.0)), float(np.abs(target).max(initial=0.0)), 1.0) * 1e5 * np.sqrt(len(target))
    a = np.vstack([features, np.full((1, features.shape[1]), scale)])
    b = np.concatenate([target, [scale]])
    weights, _ = nnls(a, b, maxiter=50 * features.shape[1] + 100)
    total = weights.sum()
    if total <= 0:
        raise ValueError("the simplex least-squares problem gave all-zero weights")
    return weights / total


class _SuperLearner(BaseEstimator):
    """Shared fitting; the two final classes differ in the prediction each candidate contributes."""

    def __init__(self, estimators=None, meta_learner="nnls", cv=5):
        self.estimators = estimators
        self.meta_learner = meta_learner
        self.cv = cv

    def _candidates(self) -> list[tuple[str, object]]:
        candidates = self._default_candidates() if self.estimators is None else list(self.estimators)
        if not candidates:
            raise ValueError("estimators is empty; give a list of (name, estimator) pairs")
        names = [name for name, _ in candidates]
        if len(set(names)) != len(names):
            raise ValueError(f"estimator names must be unique, got {names}")
        return candidates

    def _check_meta_learner(self) -> None:
        if isinstance(self.meta_learner, str):
            if self.meta_learner not in ("nnls", "discrete"):
                raise ValueError(f"meta_learner={self.meta_learner!r}: use 'nnls', 'discrete' or a scikit-learn estimator")
        elif not hasattr(self.meta_learner, "fit"):
            raise ValueError(f"meta_learner={self.meta_learner!r} is neither 'nnls', 'discrete' nor an estimator with fit")

    def _fit(self, x: np.ndarray, y: np.ndarray) -> "_SuperLearner":
        self._check_meta_learner()
        candidates = self._candidates()
        folds = list(check_cv(self.cv, y, classifier=is_classifier(self)).split(x, y))
        # out-of-fold predictions, (n, C) per candidate (C = 1 for regression)
        out_of_fold = np.stack([self._out_of_fold(estimator, x, y, folds) for _, estimator in candidates])  # (K, n, C)
        target = self._target(y)  # (n, C)
        self.cv_risks_ = ((out_of_fold - target) ** 2).sum(axis=2).mean(axis=1)  # (K,)
        if isinstance(self.meta_learner, str):
            if self.meta_learner == "nnls":
                self.weights_ = simplex_least_squares(out_of_fold.reshape(len(candidates), -1).T, target.reshape(-1))
            else:
                self.weights_ = np.eye(len(candidates))[int(np.argmin(self.cv_risks_))]
            self.meta_learner_ = None
        else:
            self.weights_ = None
            self.meta_learner_ = clone(self.meta_learner).fit(self._stack(out_of_fold), y)
        self.estimators_ = [(name, clone(estimator).fit(x, y)) for name, estimator in candidates]
        return self

    def _out_of_fold(self, estimator, x, y, folds) -> np.ndarray:
        predictions = np.zeros((len(y), self._width()))
        for train, test in folds:
            predictions[test] = self._predict_one(clone(estimator).fit(x[train], y[train]), x[test])
        return predictions

    def candidate_predictions(self, X) -> np.ndarray:
        """``(K, n, C)``: each refitted candidate's class probabilities (``C = 1`` for regression: its prediction)."""
        check_is_fitted(self, "estimators_")
        X = validate_data(self, X, reset=False)
        return np.stack([self._predict_one(estimator, X) for _, estimator in self.estimators_])

    def _combined(self, X) -> np.ndarray:
        """``(n, C)`` convex combination, or ``(n, K*C')`` inputs of the meta-learner."""
        each = self.candidate_predictions(X)
        if self.meta_learner_ is None:
            return np.tensordot(self.weights_, each, axes=1)
        return self._stack(each)

    @staticmethod
    def _stack(each: np.ndarray) -> np.ndarray:
        """(K, n, C) candidate predictions -> (n, K*C') meta-features, as sklearn's stacking lays them out."""
        if each.shape[2] == 2:  # two classes: the first probability column is redundant
            each = each[:, :, 1:]
        return np.concatenate(list(each), axis=1)


class SuperLearnerClassifier(ClassifierMixin, _SuperLearner):
    """Super Learner for classification; candidates need ``predict_proba``.

    Args:
        estimators: list of ``(name, classifier)``; default: logistic regression (standardised),
            Gaussian naive Bayes, a depth-5 tree and 5-NN (standardised).
        meta_learner: ``"nnls"`` (convex weights on out-of-fold probabilities, Brier loss),
            ``"discrete"`` or a classifier (stacking on the out-of-fold probabilities).
        cv: folds, as for ``cross_val_score`` (an int is ``StratifiedKFold`` without shuffling;
            pass ``StratifiedKFold(k, shuffle=True, random_state=seed)`` to shuffle).

    Attributes:
        cv_risks_: ``(K,)`` out-of-fold Brier score of each candidate (lower is better).
        weights_: ``(K,)`` convex weights, or ``None`` with an estimator as meta-learner.
        estimators_: the candidates refitted on all data. classes_: the labels.
    """

    def _default_candidates(self):
        from sklearn.linear_model import LogisticRegression
        from sklearn.naive_bayes import GaussianNB
        from sklearn.neighbors import KNeighborsClassifier
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.tree import DecisionTreeClassifier

        return [("logreg", make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))), ("naive_bayes", GaussianNB()),
                ("tree", DecisionTreeClassifier(max_depth=5, random_state=0)),
                ("knn", make_pipeline(StandardScaler(), KNeighborsClassifier()))]

    def fit(self, X, y):
        """Fit every candidate under CV, learn the combination, refit the candidates on all of ``X``."""
        X, y = validate_data(self, X, y)
        check_classification_targets(y)
        encoder = LabelEncoder().fit(y)
        self.classes_ = encoder.classes_
        if len(self.classes_) < 2:
            raise ValueError(f"y has 1 class ({self.classes_[0]!r}); classification needs at least 2")
        for name, estimator in self._candidates():
            if not hasattr(estimator, "predict_proba"):
                raise ValueError(f"candidate {name!r} has no predict_proba (for SVC, pass probability=True)")
        return self._fit(X, encoder.transform(y))

    def _width(self) -> int:
        return len(self.classes_)

    def _target(self, y: np.ndarray) -> np.ndarray:
        return np.eye(len(self.classes_))[y]

    def _predict_one(self, estimator, x: np.ndarray) -> np.ndarray:
        """(n, C) probabilities over all classes (a fold may miss a class: its column stays 0)."""
        out = np.zeros((len(x), len(self.classes_)))
        out[:, np.asarray(estimator.classes_, dtype=int)] = estimator.predict_proba(x)
        return out

    def predict_proba(self, X) -> np.ndarray:
        """``(n, C)`` class probabilities: the weighted candidates' or the meta-learner's."""
        combined = self._combined(X)
        if self.meta_learner_ is None:
            return combined
        out = np.zeros((len(combined), len(self.classes_)))
        out[:, np.asarray(self.meta_learner_.classes_, dtype=int)] = self.meta_learner_.predict_proba(combined)
        return out

    def predict(self, X) -> np.ndarray:
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]


class SuperLearnerRegressor(RegressorMixin, _SuperLearner):
    """Super Learner for regression (squared error).

    Args:
        estimators: list of ``(name, regressor)``; default: ridge (standardised), a depth-5 tree and
            5-NN (standardised).
        meta_learner: ``"nnls"`` (convex weights), ``"discrete"`` or a regressor (stacking).
        cv: folds, as for ``cross_val_score`` (an int is ``KFold`` without shuffling).

    Attributes:
        cv_risks_: ``(K,)`` out-of-fold MSE of each candidate. weights_: ``(K,)`` or ``None``.
    """

    def _default_candidates(self):
        from sklearn.linear_model import Ridge
        from sklearn.neighbors import KNeighborsRegressor
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.tree import DecisionTreeRegressor

        return [("ridge", make_pipeline(StandardScaler(), Ridge())), ("tree", DecisionTreeRegressor(max_depth=5, random_state=0)),
                ("knn", make_pipeline(StandardScaler(), KNeighborsRegressor()))]

    def fit(self, X, y):
        """Fit every candidate under CV, learn the combination, refit the candidates on all of ``X``."""
        X, y = validate_data(self, X, y, y_numeric=True)
        return self._fit(X, y.astype(np.float64))

    def _width(self) -> int:
        return 1

    def _target(self, y: np.ndarray) -> np.ndarray:
        return y[:, None]

    def _predict_one(self, estimator, x: np.ndarray) -> np.ndarray:
        return np.asarray(estimator.predict(x), dtype=np.float64).reshape(len(x), 1)

    def predict(self, X) -> np.ndarray:
        combined = self._combined(X)
        if self.meta_learner_ is None:
            return combined[:, 0]
        return self.meta_learner_.predict(combined)
