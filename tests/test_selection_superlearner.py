"""The Super Learner: scikit-learn's estimator checks, convex NNLS weights against brute force, agreement
with StackingClassifier / StackingRegressor, Pipeline and GridSearchCV."""
import itertools

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.datasets import load_iris, make_classification, make_regression  # noqa: E402
from sklearn.ensemble import StackingClassifier, StackingRegressor  # noqa: E402
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge  # noqa: E402
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold  # noqa: E402
from sklearn.naive_bayes import GaussianNB  # noqa: E402
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from learnfast.selection.superlearner import SuperLearnerClassifier, SuperLearnerRegressor, simplex_least_squares  # noqa: E402


@parametrize_with_checks([SuperLearnerClassifier(), SuperLearnerRegressor()])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.mark.slow
@parametrize_with_checks([SuperLearnerClassifier(meta_learner="discrete"), SuperLearnerRegressor(meta_learner=Ridge()),
                          SuperLearnerClassifier(meta_learner=LogisticRegression())])
def test_sklearn_estimator_checks_other_meta_learners(estimator, check):
    check(estimator)


def test_simplex_least_squares_matches_brute_force():
    rng = np.random.default_rng(0)
    features, target = rng.normal(size=(40, 3)), rng.normal(size=40)
    weights = simplex_least_squares(features, target)
    grid = np.linspace(0, 1, 201)
    candidates = np.array([(a, b, 1 - a - b) for a, b in itertools.product(grid, grid) if a + b <= 1 + 1e-12])
    losses = ((features @ candidates.T - target[:, None]) ** 2).sum(axis=0)
    best = candidates[np.argmin(losses)]
    assert weights.min() >= 0 and abs(weights.sum() - 1) < 1e-12
    assert np.abs(weights - best).max() <= 0.005 + 1e-9  # the grid's resolution
    assert ((features @ weights - target) ** 2).sum() <= losses.min() + 1e-9


def classifiers():
    return [("logreg", make_pipeline(StandardScaler(), LogisticRegression())), ("tree", DecisionTreeClassifier(max_depth=3, random_state=0)),
            ("nb", GaussianNB()), ("knn", KNeighborsClassifier(15))]


@pytest.mark.parametrize("classes", [2, 3])
def test_nnls_weights_are_convex_and_beat_every_candidate_in_cv(classes):
    x, y = make_classification(300, 8, n_informative=4, n_classes=classes, random_state=0)
    sl = SuperLearnerClassifier(classifiers(), cv=StratifiedKFold(5, shuffle=True, random_state=0)).fit(x, y)
    assert sl.weights_.shape == (4,) and sl.weights_.min() >= 0 and abs(sl.weights_.sum() - 1) < 1e-9
    proba = sl.predict_proba(x)
    assert proba.shape == (300, classes) and np.allclose(proba.sum(axis=1), 1)
    # the combination's own out-of-fold Brier score is no worse than the best candidate's (it may pick that one)
    discrete = SuperLearnerClassifier(classifiers(), meta_learner="discrete", cv=StratifiedKFold(5, shuffle=True, random_state=0)).fit(x, y)
    assert np.allclose(discrete.cv_risks_, sl.cv_risks_)
    assert discrete.weights_.tolist() == np.eye(4)[np.argmin(sl.cv_risks_)].tolist()
    assert np.array_equal(discrete.predict_proba(x), discrete.estimators_[int(np.argmin(sl.cv_risks_))][1].predict_proba(x))
    assert np.allclose(np.tensordot(sl.weights_, sl.candidate_predictions(x), axes=1), proba)


@pytest.mark.parametrize("classes", [2, 3])
def test_stacking_agrees_with_sklearn_stacking_classifier(classes):
    x, y = make_classification(200, 6, n_informative=4, n_classes=classes, random_state=1)
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    ours = SuperLearnerClassifier(classifiers(), meta_learner=LogisticRegression(), cv=cv).fit(x, y)
    theirs = StackingClassifier(classifiers(), final_estimator=LogisticRegression(), cv=cv, stack_method="predict_proba").fit(x, y)
    assert np.allclose(ours.predict_proba(x), theirs.predict_proba(x), atol=1e-10)
    assert np.array_equal(ours.predict(x), theirs.predict(x))


def test_stacking_agrees_with_sklearn_stacking_regressor():
    x, y = make_regression(200, 5, noise=5.0, random_state=0)
    regressors = [("ridge", Ridge()), ("tree", DecisionTreeRegressor(max_depth=4, random_state=0)), ("knn", KNeighborsRegressor())]
    ours = SuperLearnerRegressor(regressors, meta_learner=LinearRegression(), cv=KFold(5)).fit(x, y)
    theirs = StackingRegressor(regressors, final_estimator=LinearRegression(), cv=KFold(5)).fit(x, y)
    assert np.allclose(ours.predict(x), theirs.predict(x), atol=1e-8)


def test_regressor_nnls_prefers_the_right_candidate():
    x, y = make_regression(200, 5, noise=1.0, random_state=0)
    sl = SuperLearnerRegressor([("ridge", Ridge()), ("tree", DecisionTreeRegressor(max_depth=2, random_state=0))]).fit(x, y)
    assert sl.weights_[0] > 0.9 and sl.cv_risks_[0] < sl.cv_risks_[1]


def test_pipeline_and_grid_search():
    x, y = load_iris(return_X_y=True)
    pipe = make_pipeline(StandardScaler(), SuperLearnerClassifier([("tree", DecisionTreeClassifier(max_depth=3, random_state=0)),
                                                                   ("nb", GaussianNB())], cv=3))
    search = GridSearchCV(pipe, {"superlearnerclassifier__meta_learner": ["nnls", "discrete"]}, cv=3).fit(x, y)
    assert search.best_score_ > 0.9 and search.best_params_["superlearnerclassifier__meta_learner"] in ("nnls", "discrete")


@pytest.mark.parametrize("kwargs, message", [
    ({"meta_learner": "average"}, "use 'nnls', 'discrete' or a scikit-learn estimator"),
    ({"estimators": []}, "estimators is empty"),
    ({"estimators": [("a", GaussianNB()), ("a", GaussianNB())]}, "must be unique"),
])
def test_bad_settings_are_clear_errors(kwargs, message):
    x, y = load_iris(return_X_y=True)
    with pytest.raises(ValueError, match=message):
        SuperLearnerClassifier(**kwargs).fit(x, y)


def test_candidate_without_predict_proba():
    from sklearn.svm import SVC

    x, y = load_iris(return_X_y=True)
    with pytest.raises(ValueError, match="probability=True"):
        SuperLearnerClassifier([("svc", SVC())]).fit(x, y)
