"""The evaluation protocol: fixed seeded episodes, independent of batching; mean and 95% CI."""
import math

import pytest
import torch
import torch.nn.functional as F

import learnfast as lf
from learnfast.data import SinusoidTasks
from learnfast.episodes import EpisodeSampler, EpisodeSpec
from learnfast.train.evaluate import EvalResult, episode_scores, evaluate, fixed_episodes


class Oracle(lf.Algorithm):
    """Cheats by reading the query labels: perfect logits (classification) or exact targets (regression)."""

    def __init__(self, regression=False):
        super().__init__(loss="mse" if regression else "cross_entropy")
        self.regression = regression
        self.bias = torch.nn.Parameter(torch.zeros(()))

    def forward(self, batch, inner_steps=None):
        if self.regression:
            return batch.query_y.clone()
        return F.one_hot(batch.query_y, int(batch.support_y.max()) + 1).float()


def blob_source(ways=3, per_class=10):
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(8).repeat_interleave(per_class)
    x = torch.randn(8, 1, 4, generator=g) * 3 + 0.5 * torch.randn(8, per_class, 4, generator=g)
    return EpisodeSampler(x.flatten(0, 1), labels, EpisodeSpec(ways, 2, 3))


def test_fixed_episodes_independent_of_batch_size():
    source = blob_source()
    one = torch.cat([b.query_x for b in fixed_episodes(source, 15, seed=3, batch_size=1)])
    seven = torch.cat([b.query_x for b in fixed_episodes(source, 15, seed=3, batch_size=7)])
    assert one.shape[0] == 15 and torch.equal(one, seven)
    other_seed = torch.cat([b.query_x for b in fixed_episodes(source, 15, seed=4, batch_size=7)])
    assert not torch.equal(one, other_seed)
    assert [b.batch_size for b in fixed_episodes(source, 15, seed=3, batch_size=7)] == [7, 7, 1]


@pytest.mark.parametrize("strategy", ["loop", "vmap"])
def test_evaluate_independent_of_batch_size_maml_sinusoid(strategy):
    torch.manual_seed(0)
    maml = lf.MAML(lf.MLP(hidden=(8,)), inner_lr=0.01, inner_steps=2, loss="mse", strategy=strategy)
    source = SinusoidTasks(shots=5, queries=10)
    a = evaluate(maml, source, "mse", episodes=15, seed=1, batch_size=1)
    b = evaluate(maml, source, "mse", episodes=15, seed=1, batch_size=7)
    assert a.values.shape == (15,)
    assert torch.allclose(a.values, b.values, rtol=1e-6, atol=0)
    if strategy == "loop":  # the same per-task computation either way
        assert torch.equal(a.values, b.values)
    assert len(set(a.values.tolist())) > 1  # episodes differ from each other


def test_evaluate_independent_of_batch_size_protonet():
    torch.manual_seed(0)
    proto = lf.ProtoNet(lf.MLP(in_features=4, hidden=(8,), out_features=4))
    a = evaluate(proto, blob_source(), "accuracy", episodes=15, seed=0, batch_size=1)
    b = evaluate(proto, blob_source(), "accuracy", episodes=15, seed=0, batch_size=7)
    assert torch.equal(a.values, b.values)


def test_ci95_formula():
    values = torch.tensor([0.2, 0.4, 0.9, 0.7, 0.5], dtype=torch.float64)
    result = EvalResult("accuracy", values)
    n = 5
    mean = sum(values.tolist()) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values.tolist()) / (n - 1))
    assert result.episodes == 5
    assert result.mean == pytest.approx(mean)
    assert result.ci95 == pytest.approx(1.96 * std / math.sqrt(n))
    assert math.isnan(EvalResult("mse", torch.tensor([1.0])).ci95)
    assert "95% CI, 5 episodes" in str(result) and "%" in str(result)


def test_ci95_of_evaluate_output():
    torch.manual_seed(0)
    proto = lf.ProtoNet(lf.MLP(in_features=4, hidden=(8,), out_features=4))
    result = evaluate(proto, blob_source(), "accuracy", episodes=30, seed=0)
    v = result.values
    assert result.ci95 == pytest.approx(1.96 * float(v.std()) / math.sqrt(30))


def test_perfect_oracle_scores_one_and_zero_mse():
    acc = evaluate(Oracle(), blob_source(), "accuracy", episodes=12, seed=0, batch_size=5)
    assert acc.mean == 1.0 and acc.ci95 == 0.0 and torch.equal(acc.values, torch.ones(12, dtype=torch.float64))
    mse = evaluate(Oracle(regression=True), SinusoidTasks(5, 5), "mse", episodes=12, seed=0)
    assert mse.mean == 0.0


def test_episode_scores():
    batch = lf.Task(torch.zeros(2, 2, 1), torch.tensor([[0, 1], [0, 1]]), torch.zeros(2, 4, 1), torch.tensor([[0, 1, 1, 0], [1, 1, 1, 1]]))
    logits = torch.tensor([[[1.0, 0], [0, 1], [1, 0], [1, 0]], [[0, 1.0], [1, 0], [1, 0], [1, 0]]])
    assert torch.equal(episode_scores(logits, batch, "accuracy"), torch.tensor([0.75, 0.25]))
    preds = torch.zeros(2, 4, 1)
    reg = lf.Task(torch.zeros(2, 2, 1), torch.zeros(2, 2, 1), torch.zeros(2, 4, 1), torch.tensor([[1.0, 1, 1, 1], [2, 0, 0, 0]]).unsqueeze(-1))
    assert torch.equal(episode_scores(preds, reg, "mse"), torch.tensor([1.0, 1.0]))


def test_evaluate_restores_training_mode_and_uses_eval_steps():
    torch.manual_seed(0)
    maml = lf.MAML(lf.MLP(hidden=(8,)), inner_lr=0.01, inner_steps=0, eval_inner_steps=5, loss="mse")
    maml.train()
    source = SinusoidTasks(5, 5)
    default = evaluate(maml, source, "mse", episodes=6, seed=0)
    assert maml.training
    explicit = evaluate(maml, source, "mse", episodes=6, seed=0, inner_steps=5)
    zero = evaluate(maml, source, "mse", episodes=6, seed=0, inner_steps=0)
    assert torch.equal(default.values, explicit.values)
    assert not torch.equal(default.values, zero.values)
    maml.eval()
    evaluate(maml, source, "mse", episodes=2, seed=0)
    assert not maml.training


def test_evaluate_rejects_no_episodes():
    with pytest.raises(ValueError, match="episodes must be >= 1"):
        evaluate(Oracle(), blob_source(), "accuracy", episodes=0)


def test_inner_steps_rejected_for_metric_methods():
    """ProtoNet has no test-time gradient steps: asking for some is a clear error, not a TypeError."""
    proto = lf.ProtoNet(lf.MLP(in_features=4, hidden=(8,), out_features=4))
    with pytest.raises(ValueError, match="does not adapt by gradient steps"):
        evaluate(proto, blob_source(), "accuracy", episodes=5, seed=0, inner_steps=3)
