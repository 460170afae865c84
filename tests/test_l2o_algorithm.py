"""The registered learned optimizer (algorithm ``l2o``): the registry contract on problems, the trainer, eval."""
import copy

import pytest
import torch

from learnfast.algorithms import ALGORITHMS, L2O
from learnfast.optim import LearnedOptimizer, MomentumLSTM, QuadraticProblems
from learnfast.tasks import task_at
from learnfast.train.build import build_algorithm, build_source, metric_name
from learnfast.train.checkpoint import load_checkpoint
from learnfast.train.config import ConfigError, RunConfig, load_config
from learnfast.train.trainer import Trainer


def problems(count=3, seed=0):
    return QuadraticProblems().sample(count, torch.Generator().manual_seed(seed))


def tiny(rule="lstm", seed=0, inner_steps=6, unroll=3):
    torch.manual_seed(seed)
    rate = {"momentum-lstm": {"initial_rate": 0.01}}.get(rule, {})
    return L2O("quadratic", rule=rule, inner_steps=inner_steps, unroll=unroll, **rate)


def test_registered_and_built_from_its_configs():
    assert ALGORITHMS["l2o"] is L2O and L2O.learned_optimizer
    for name, optimizee in (("l2o-quadratic", "quadratic"), ("l2o-mlp", "mlp")):
        cfg = load_config(name)
        algorithm = build_algorithm(cfg)
        assert algorithm.optimizee_name == optimizee and metric_name(cfg) == "final_loss"
        assert set(algorithm.meta_params()) == {k for k, _ in algorithm.named_parameters()}  # the optimizee's weights are not among them


@pytest.mark.parametrize("rule", ["lstm", "momentum-lstm", "rates"])
def test_contract_on_problems(rule):
    """tests/test_contract.py's checks, on optimization problems instead of few-shot tasks."""
    algorithm = tiny(rule)
    if rule == "momentum-lstm":  # its head starts at zero (plain Nesterov), which leaves the LSTM no gradient yet
        torch.nn.init.normal_(algorithm.network.head.weight, std=0.1)
    batch = problems()
    before = copy.deepcopy(algorithm.state_dict())
    out = algorithm.meta_loss(batch)
    assert out.loss.dim() == 0 and torch.isfinite(out.loss) and out.predictions.shape == (3, 1)
    out.loss.backward()
    for k, p in algorithm.meta_params().items():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, k
    algorithm.eval()
    first = algorithm(batch)
    assert first.shape == (3, 1) and torch.equal(first, algorithm(batch))  # no state between calls
    if rule != "momentum-lstm":
        assert torch.equal(first, tiny(rule)(batch))  # same seed, same output
    assert all(torch.equal(before[k], v) for k, v in algorithm.state_dict().items())
    with pytest.raises(ValueError, match="leading task dimension"):
        algorithm(task_at(batch, 0))


def test_meta_training_lowers_the_final_loss_on_held_out_problems():
    algorithm = tiny("lstm", inner_steps=20, unroll=5)
    held_out = problems(16, seed=1000)
    with torch.no_grad():
        before = algorithm.eval()(held_out).mean().item()
    algorithm.train()
    opt = torch.optim.Adam(algorithm.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    for _ in range(15):
        opt.zero_grad()
        algorithm.meta_loss(QuadraticProblems().sample(8, g)).loss.backward()
        opt.step()
    with torch.no_grad():
        after = algorithm.eval()(held_out).mean().item()
    assert after < 0.5 * before, (before, after)


def test_bad_settings_are_clear_errors():
    with pytest.raises(ValueError, match=r"initial_rate is not a setting of rule='lstm' \(its settings: lstm_hidden"):
        L2O("quadratic", initial_rate=0.1)
    with pytest.raises(ValueError, match="output_scale is not a setting of rule='momentum-lstm'"):
        L2O("quadratic", rule="momentum-lstm", initial_rate=0.1, output_scale=0.5)
    with pytest.raises(ValueError, match='rule="momentum-lstm" needs initial_rate: the SGD\\+Nesterov rate tuned'):
        L2O("quadratic", rule="momentum-lstm")
    with pytest.raises(ValueError, match="the quadratic optimizee has no activation"):
        L2O("quadratic", activation="relu")
    with pytest.raises(ValueError, match="unknown rule"):
        L2O("quadratic", rule="adam")
    with pytest.raises(ValueError, match=r'objective="final" back-propagates the whole run: set unroll >= inner_steps \(100\), got 20'):
        L2O("quadratic", objective="final")
    with pytest.raises(ValueError, match="unknown objective"):
        L2O("quadratic", objective="sum")
    cfg = load_config("l2o-quadratic")
    cfg.data.dataset = "sinusoid"
    with pytest.raises(ConfigError, match="learns an optimizer from optimization problems"):
        build_algorithm(cfg)
    cfg = RunConfig(algorithm={"name": "maml"})
    cfg.data.dataset = "quadratic"
    with pytest.raises(ConfigError, match="is a few-shot method"):
        build_algorithm(cfg)
    mlp = L2O("mlp", inner_steps=2, unroll=2)
    with pytest.raises(ValueError, match="pair it with its own problem family"):
        mlp.meta_loss(problems())


def quadratic_cfg(iterations=8):
    cfg = load_config("l2o-quadratic")
    cfg.algorithm.update(inner_steps=6, unroll=3)
    for key, value in dict(meta_batch=4, iterations=iterations, val_every=3, val_episodes=3, checkpoint_every=2, seed=5).items():
        setattr(cfg.train, key, value)
    return cfg


def test_trainer_runs_it_and_a_resumed_run_is_bitwise_identical(tmp_path):
    straight = Trainer(quadratic_cfg(8), tmp_path / "a", progress=False)
    summary = straight.fit()
    assert summary["iteration"] == 8 and "val_final_loss" in summary
    Trainer(quadratic_cfg(5), tmp_path / "b", progress=False).fit()  # stopped at 5, then extended to 8
    extended = Trainer(quadratic_cfg(8), tmp_path / "b", progress=False)
    extended.fit(resume=True)
    weights = extended.algorithm.state_dict()
    assert all(torch.equal(weights[k], v) for k, v in straight.algorithm.state_dict().items())
    best = load_checkpoint(tmp_path / "a" / "best.safetensors")
    assert best.meta["metric"] == "final_loss" and set(best.weights) == set(weights)


@pytest.mark.parametrize("rule, name", [("lstm", "LSTM (learned)"), ("momentum-lstm", "momentum LSTM (learned)")])
def test_eval_report_compares_with_tuned_baselines(tmp_path, monkeypatch, rule, name):
    monkeypatch.chdir(tmp_path)
    algorithm = tiny(rule, inner_steps=10).eval()
    source = build_source(load_config("l2o-quadratic"), "test", 5, 1, 1)
    report = algorithm.extra_report(source, episodes=6, seed=0)
    table = report["comparison"]
    for row in (name, "SGD", "SGD+Nesterov", "RMSprop", "Adam", "loss @ 10 steps", "loss @ 20 steps"):
        assert row in table
    assert set(report["beats_tuned_adam"]) == {"10 steps", "20 steps"}
    assert set(report["against_best_baseline"]) == {"10 steps", "20 steps"}
    assert (tmp_path / report["curves_png"]).stat().st_size > 1000


def test_against_best_pairs_the_learned_rule_with_the_lowest_baseline_problem_by_problem():
    from learnfast.optim.compare import Curve, against_best

    learned = Curve("learned", None, torch.tensor([[5.0, 5.0, 5.0, 5.0], [1.0, 2.0, 3.0, 4.0]]))
    worse = Curve("SGD", 0.1, torch.tensor([[5.0] * 4, [9.0] * 4]))
    best = Curve("Adam", 0.01, torch.tensor([[5.0] * 4, [2.0, 2.0, 2.0, 6.0]]))
    result = against_best([learned, worse, best], 1)
    differences = torch.tensor([1.0, 0.0, -1.0, 2.0], dtype=torch.float64)  # Adam - learned
    assert result["baseline"] == "Adam" and result["fraction_lower"] == 0.5
    assert result["mean_difference"] == pytest.approx(0.5)
    assert result["ci95"] == pytest.approx(1.96 * differences.std().item() / 2)


def test_a_trained_momentum_lstm_loads_into_learned_optimizer(tmp_path):
    cfg = quadratic_cfg(4)
    cfg.algorithm.update(rule="momentum-lstm", initial_rate=0.01)
    trainer = Trainer(cfg, tmp_path / "m", progress=False)
    trainer.fit()
    opt = LearnedOptimizer(torch.nn.Linear(3, 1).parameters(), tmp_path / "m" / "last.safetensors")
    assert isinstance(opt.network, MomentumLSTM)
    trained = trainer.algorithm.network.state_dict()
    assert trained["log_rate"] != torch.log(torch.tensor(0.01))  # meta-training moved the rate
    assert all(torch.equal(v, trained[k]) for k, v in opt.network.state_dict().items())
