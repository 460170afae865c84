"""Recommenders, leave-one-task-out evaluation (which never sees the held-out task), successive halving and the loop."""
import numpy as np
import pytest

pytest.importorskip("sklearn")

from learnfast.selection import loop as loop_module  # noqa: E402
from learnfast.selection.evaluation import leave_one_out, mean_ci, paired_test, summarise  # noqa: E402
from learnfast.selection.kb import KnowledgeBase, Strategy  # noqa: E402
from learnfast.selection.loop import select_and_run, successive_halving  # noqa: E402
from learnfast.selection.recommenders import AverageRank, Evidence, MetaModel, NearestTasks, Recommender, SingleBest  # noqa: E402
from learnfast.selection.strategies import cv_folds  # noqa: E402

A, B, C = Strategy("knn", {"n_neighbors": 1}), Strategy("tree", {"max_depth": 2}), Strategy("naive_bayes", {})


def synthetic(tasks=60, seed=0):
    """Strategy A is best when meta-feature f > 0, B otherwise; C is always mediocre."""
    rng = np.random.default_rng(seed)
    f = rng.normal(size=tasks)
    noise = rng.normal(size=tasks)
    scores = np.stack([0.7 + 0.2 * (f > 0), 0.7 + 0.2 * (f <= 0), np.full(tasks, 0.75)], axis=1) + 0.01 * rng.normal(size=(tasks, 3))
    return Evidence(tuple(f"t{i}" for i in range(tasks)), (A, B, C), scores, np.stack([f, noise], axis=1), ("f", "noise"))


def test_single_best_and_average_rank_differ_where_they_should():
    # A: best on 3 of 4 tasks by a hair, terrible on the fourth; B: second on those, best on the fourth
    scores = np.array([[0.90, 0.89, 0.5], [0.90, 0.89, 0.5], [0.90, 0.89, 0.5], [0.10, 0.89, 0.5]])
    evidence = Evidence(("a", "b", "c", "d"), (A, B, C), scores, np.zeros((4, 1)), ("f",))
    assert [s for s, _ in SingleBest().fit(evidence).rank({})] == [B, A, C]
    assert [s for s, _ in AverageRank().fit(evidence).rank({})] == [A, B, C]
    assert SingleBest().fit(evidence).rank({})[0][1] == pytest.approx(0.89)


def test_knn_and_meta_model_follow_the_meta_feature():
    evidence = synthetic()
    for recommender in (NearestTasks(k=5).fit(evidence), MetaModel(n_estimators=50).fit(evidence)):
        assert recommender.rank({"f": 2.0, "noise": 0.0})[0][0] == A
        assert recommender.rank({"f": -2.0, "noise": 0.0})[0][0] == B
        predicted = dict(recommender.rank({"f": 2.0}))  # a missing feature is imputed with the mean
        assert predicted[A] == pytest.approx(0.9, abs=0.08) and predicted[B] < 0.8 and set(predicted) == {A, B, C}


def test_evidence_from_kb_ignores_partial_results(tmp_path):
    with KnowledgeBase(tmp_path / "kb.sqlite") as kb:
        kb.add_result("t1", A, score=0.9, seconds=1, metric="balanced_accuracy", folds_done=5, folds_total=5, meta_features={"f": 1.0})
        kb.add_result("t1", B, score=0.99, seconds=1, metric="balanced_accuracy", folds_done=1, folds_total=5)
        kb.add_result("t2", B, score=0.8, seconds=1, metric="balanced_accuracy", folds_done=5, folds_total=5, meta_features={"g": 2.0})
        evidence = Evidence.from_kb(kb)
    assert evidence.tasks == ("t1", "t2") and evidence.feature_names == ("f", "g")
    assert [s.learner for s in evidence.strategies] == ["knn", "tree"]
    assert np.array_equal(evidence.scores, np.array([[0.9, np.nan], [np.nan, 0.8]]), equal_nan=True)
    assert evidence.features_of("t1") == {"f": 1.0}
    with pytest.raises(ValueError, match="no complete results"):
        SingleBest().fit(KnowledgeBase(":memory:"))


class Spy(Recommender):
    """Records what it was fitted on and ranked for."""

    fitted_on: list = []
    asked: list = []

    def fit(self, source):
        Spy.fitted_on.append(set(source.tasks))
        self.inner = NearestTasks(k=1).fit(source)
        return self

    def rank(self, meta_features):
        Spy.asked.append(meta_features)
        return self.inner.rank(meta_features)


def test_leave_one_out_never_sees_the_held_out_task():
    # scores are noise, so only the task itself could tell its best strategy: the nearest task with k=1
    # is the held-out task itself if it leaked into training, and then every regret would be 0
    rng = np.random.default_rng(1)
    evidence = Evidence(tuple(f"t{i}" for i in range(30)), (A, B, C), rng.uniform(size=(30, 3)), rng.normal(size=(30, 2)), ("f", "g"))
    Spy.fitted_on, Spy.asked = [], []
    result = leave_one_out(evidence, {"spy": Spy}, tries=(1, 3))
    assert all(task not in seen and len(seen) == 29 for task, seen in zip(evidence.tasks, Spy.fitted_on))
    assert Spy.asked == [evidence.features_of(t) for t in evidence.tasks]  # meta-features only, no scores
    assert result.regret["spy"][:, 0].mean() > 0.05
    assert np.all(result.regret["spy"][:, 1] == 0)  # after trying all 3, nothing is left to regret
    leaky = leave_one_out(evidence, {"leaky": lambda: _Leaky(evidence)}, tries=(1,))
    assert np.all(leaky.regret["leaky"] == 0) and np.all(leaky.top1["leaky"] == 1)  # what leakage would look like


class _Leaky(Recommender):
    def __init__(self, full):
        self.full = full

    def fit(self, source):
        self.inner = NearestTasks(k=1).fit(self.full)  # ignores the held-out split: the bug the test guards against
        return self

    def rank(self, meta_features):
        return self.inner.rank(meta_features)


def test_loo_summary_and_paired_test():
    evidence = synthetic(tasks=40)
    result = leave_one_out(evidence, {"single-best": SingleBest, "meta-model": lambda: MetaModel(n_estimators=30)}, tries=(1, 2, 3))
    summary = summarise(result)
    meta, single = summary["recommenders"]["meta-model"], summary["recommenders"]["single-best"]
    assert meta["regret"][0] < single["regret"][0] and meta["top1"][0] > 0.8
    assert summary["paired_vs_single-best"]["meta-model"]["p_t"] < 0.01
    assert summary["recommenders"]["random search"]["regret_at"][3] == pytest.approx(0, abs=1e-12)
    assert mean_ci(np.array([1.0, 1.0])) == (1.0, 0.0)
    assert paired_test(np.zeros(12), np.zeros(12))["tied"] == 12


def test_successive_halving_spends_folds_on_the_best(monkeypatch):
    from sklearn.datasets import load_breast_cancer

    x, y = load_breast_cancer(return_X_y=True)
    calls = []
    real = loop_module.cross_validate

    def counting(strategy, x, y, folds):
        calls.append((strategy.learner, len(folds)))
        return real(strategy, x, y, folds)

    monkeypatch.setattr(loop_module, "cross_validate", counting)
    strategies = [Strategy("tree", {"max_depth": 1, "random_state": 0}), Strategy("naive_bayes", {}),
                  Strategy("logreg", {"C": 1.0, "max_iter": 2000}), Strategy("knn", {"n_neighbors": 5})]
    trials = successive_halving(strategies, x, y, cv_folds(y, 5), eta=2)
    assert sorted(t.folds_done for t in trials) == [1, 1, 2, 5]  # 4 on 1 fold, 2 on 2 folds, 1 on all 5
    assert sum(n for _, n in calls) == 4 + 2 + 3 == sum(t.folds_done for t in trials)
    assert trials[0].folds_done == 5 and trials[0].score >= max(t.score for t in trials[1:] if t.folds_done == 2) - 0.05
    with pytest.raises(ValueError, match="eta = 1"):
        successive_halving(strategies, x, y, cv_folds(y, 5), eta=1)


def test_loop_records_and_resumes(tmp_path):
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    with KnowledgeBase(tmp_path / "kb.sqlite") as kb:
        for i, (name, score) in enumerate([("t1", (0.9, 0.8, 0.7)), ("t2", (0.85, 0.8, 0.75))]):
            for strategy, s in zip((Strategy("naive_bayes", {}), Strategy("tree", {"max_depth": 1, "random_state": 0}),
                                    Strategy("knn", {"n_neighbors": 1})), score):
                kb.add_result(name, strategy, score=s, seconds=0, metric="balanced_accuracy", folds_done=5, folds_total=5,
                              meta_features={"rows": 100.0 + i})
        result = select_and_run(x, y, kb, SingleBest(), "iris", rounds=2, per_round=2)
        assert [s.learner for s, _ in result.rankings[0]] == ["naive_bayes", "tree", "knn"]
        assert [t.strategy.learner for t in result.trials[:2]] == ["naive_bayes", "tree"]  # round 1: the top 2
        assert [t.strategy.learner for t in result.trials[2:]] == ["knn"]  # round 2: what is left
        assert result.best.strategy.learner == "naive_bayes" and result.best.score > 0.9
        assert "iris" in kb.tasks() and kb.tasks()["iris"]["rows"] == 150
        n = kb.count()
        again = select_and_run(x, y, kb, SingleBest(), "iris", rounds=1, per_round=2)
        assert again.trials == [] or all(t.strategy.learner != "naive_bayes" for t in again.trials)
        assert kb.count() == n + len(again.trials)
