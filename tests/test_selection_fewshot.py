"""Few-shot strategy selection: meta-features finite and deterministic, the strategy grid, and
leave-one-alphabet-out that never sees the held-out alphabet (both of its task families)."""
import math

import numpy as np
import pytest
import torch

import learnfast as lf
from conftest import bn_conv4, image_tasks
from learnfast.selection.fewshot_metafeatures import FEATURES, FewShotFeaturizer
from learnfast.selection.kb import Strategy


def featurizer(seed: int = 0) -> FewShotFeaturizer:
    encoder = bn_conv4(strided=True, seed=seed, out_features=None).float()
    tadam = lf.TADAM(bn_conv4(strided=True, seed=seed + 1, out_features=None).float(), in_shape=(1, 28, 28))
    generator = torch.Generator().manual_seed(seed)
    reference = torch.rand(20, 1, 28, 28, generator=generator)
    f = FewShotFeaturizer(encoder, tadam.embed_task, reference, torch.zeros(1, 1), 1.0, torch.zeros(1))
    means = f.class_means(torch.rand(12, 1, 28, 28, generator=generator), torch.arange(6).repeat(2), chunk=5)
    assert means.shape[0] == 6
    train = image_tasks(3, generator, ways=3, shots=1, queries=1, dtype=torch.float32)
    with torch.no_grad():
        task_embedding = tadam.embed_task(train).mean(0)
    return FewShotFeaturizer(encoder, tadam.embed_task, reference, means, 2.0, task_embedding)


@pytest.mark.parametrize("case", ["one-shot", "five-shot", "blank images", "one episode", "two ways"])
def test_fewshot_meta_features_are_finite_and_deterministic(case):
    generator = torch.Generator().manual_seed(1)
    ways, shots, batch = {"one-shot": (5, 1, 4), "five-shot": (5, 5, 2), "blank images": (5, 1, 2),
                          "one episode": (5, 1, 1), "two ways": (2, 3, 2)}[case]
    tasks = image_tasks(batch, generator, ways=ways, shots=shots, queries=2, dtype=torch.float32)
    if case == "blank images":  # every support image the same: zero spreads and distances, no division by zero
        tasks = lf.Task(torch.zeros_like(tasks.support_x), tasks.support_y, tasks.query_x, tasks.query_y)
    f = featurizer()
    first, second = f(tasks), featurizer()(tasks)
    assert tuple(first) == FEATURES
    assert all(math.isfinite(v) for v in first.values()), first
    assert first == second  # deterministic: no sampling, same inputs -> same numbers
    assert first["ways"] == ways and first["shots"] == shots
    if shots == 1:
        assert first["class_spread"] == 0 and first["spread_ratio"] == 0
    if case == "blank images":
        assert first["pixel_std"] == 0 and first["prototype_distance"] == 0 and first["ink_fraction"] == 0
    else:
        assert first["prototype_distance"] >= first["prototype_distance_min"] > 0
    queries_changed = lf.Task(tasks.support_x, tasks.support_y, torch.rand_like(tasks.query_x), tasks.query_y)
    assert f(queries_changed) == first  # only the support sets are read


def test_fewshot_meta_features_reject_a_single_episode_without_batch_dimension():
    tasks = image_tasks(1, torch.Generator().manual_seed(0), ways=3, shots=1, queries=1, dtype=torch.float32)
    single = lf.Task(tasks.support_x[0, :, 0], tasks.support_y[0], tasks.query_x[0, :, 0], tasks.query_y[0])
    with pytest.raises(ValueError, match="batch of episodes"):
        featurizer()(single)


def test_fewshot_grid_and_learner_settings():
    from learnfast.selection.fewshot import GRID, ZOO_FILES, Learners, alphabet_of, task_seed

    assert len(GRID) == len({s.key for s in GRID}) == 23
    assert {s.learner for s in GRID} <= set(ZOO_FILES)
    assert alphabet_of("omniglot-test/Greek/5w1s") == alphabet_of("omniglot-test/Greek/5w5s") == "omniglot-test/Greek"
    assert task_seed("omniglot-test/Greek/5w1s") == task_seed("omniglot-test/Greek/5w1s") != task_seed("omniglot-test/Greek/5w5s")
    learners = Learners("zoo")
    maml = lf.MAML(bn_conv4(), inner_lr=0.4)
    learners.loaded.update(maml=maml, protonet=lf.ProtoNet(bn_conv4(out_features=None)))
    algorithm, steps = learners.apply(Strategy("maml", {"inner_steps": 3, "inner_lr": 0.2}))
    assert algorithm is maml and steps == 3 and maml.inner_lr == 0.2
    with pytest.raises(ValueError, match="no single inner learning rate"):
        learners.apply(Strategy("protonet", {"inner_lr": 0.1}))
    with pytest.raises(ValueError, match="unknown setting"):
        learners.apply(Strategy("maml", {"inner_momentum": 0.9}))
    with pytest.raises(ValueError, match="unknown few-shot strategy"):
        learners.get("nope")


def test_leave_one_alphabet_out_never_sees_the_held_out_alphabet():
    pytest.importorskip("sklearn")
    from learnfast.selection.evaluation import leave_one_out
    from learnfast.selection.fewshot import alphabet_of
    from learnfast.selection.recommenders import Evidence, NearestTasks, Recommender

    # two families per alphabet with identical meta-features and scores: a 1-nearest-task recommender
    # finds the sibling family (zero regret) exactly when the held-out alphabet leaks into its training set
    rng = np.random.default_rng(0)
    alphabets = [f"omniglot-test/a{i}" for i in range(15)]
    tasks = tuple(f"{a}/{family}" for a in alphabets for family in ("5w1s", "5w5s"))
    scores = np.repeat(rng.uniform(size=(15, 4)), 2, axis=0)
    features = np.repeat(rng.normal(size=(15, 2)), 2, axis=0)
    evidence = Evidence(tasks, tuple(Strategy(f"s{j}") for j in range(4)), scores, features, ("f", "g"))
    fitted_on = []

    class Spy(Recommender):
        def fit(self, source):
            fitted_on.append(set(source.tasks))
            self.inner = NearestTasks(k=1).fit(source)
            return self

        def rank(self, meta_features):
            return self.inner.rank(meta_features)

    grouped = leave_one_out(evidence, {"spy": Spy}, tries=(1,), group=alphabet_of)
    # one fit per alphabet (its two families share it), each without exactly that alphabet's two tasks
    missing = [set(alphabets) - {alphabet_of(t) for t in seen} for seen in fitted_on]
    assert all(len(seen) == 28 for seen in fitted_on) and sorted(m.pop() for m in missing if len(m) == 1) == sorted(alphabets)
    assert grouped.regret["spy"][:, 0].mean() > 0.05
    fitted_on.clear()
    per_task = leave_one_out(evidence, {"spy": Spy}, tries=(1,))  # holding out the task alone leaks its sibling
    assert np.all(per_task.regret["spy"] == 0)
