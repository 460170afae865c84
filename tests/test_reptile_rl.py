"""Reptile on meta-RL tasks (algorithm ``reptile-rl``): the pseudo-gradient against a float64 hand loop, k = 1 as
joint training, the settings it refuses, and a train + eval run through the CLI."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.func import functional_call

from learnfast.algorithms import ALGORITHMS, MAMLRL, ReptileRL
from learnfast.algorithms.base import submodule_params
from learnfast.cli import main
from learnfast.rl import Nav2D, RLTasks
from learnfast.rl.returns import advantages, pack, reinforce_loss
from learnfast.train.build import build_algorithm, metric_name
from learnfast.train.config import ConfigError, load_config


def nav_tasks(count=3, seed=0, dtype=torch.float64):
    return RLTasks(Nav2D()).sample(count, torch.Generator().manual_seed(seed)).to(dtype=dtype)


def test_pseudo_gradient_is_theta_minus_the_mean_of_hand_adapted_policies():
    torch.manual_seed(0)
    algorithm = ReptileRL("nav2d", hidden=8, inner_lr=0.1, inner_steps=2, trajectories=3, later_steps_scale=0.5).double()
    batch = nav_tasks()
    out = algorithm.meta_loss(batch)
    out.loss.backward()
    assert torch.allclose(out.loss, -out.predictions.mean()) and out.predictions.shape == (3, 1)

    # the trajectories are fixed by the task seeds; each task's two steps by plain autograd on them
    with torch.no_grad():
        _, rounds = algorithm.rounds(batch, 2, submodule_params(algorithm.meta_params()), "first-order")
    theta = {k: p.detach() for k, p in algorithm.model.named_parameters()}
    phis = []
    for i in range(3):
        phi = dict(theta)
        for step, lr in enumerate((0.1, 0.05)):
            obs, act, rew = (x[i:i + 1] for x in rounds[step][:3])
            current = {k: v.clone().requires_grad_() for k, v in phi.items()}
            loss = reinforce_loss(functional_call(algorithm.model, current, (obs[0],)), pack(act[0], advantages(obs, rew, 0.99)[0]))
            grads = torch.autograd.grad(loss, list(current.values()))
            phi = {k: v - lr * g for (k, v), g in zip(phi.items(), grads)}
        phis.append(phi)
    assert torch.allclose(out.predictions[:, 0], (rounds[0].returns() + rounds[1].returns()) / 2)  # of the rounds it sampled
    for k, p in algorithm.model.named_parameters():
        expected = theta[k] - torch.stack([phi[k] for phi in phis]).mean(0)
        assert expected.abs().max() > 0 and torch.allclose(p.grad, expected, rtol=1e-10, atol=1e-13), k


def test_one_inner_step_is_joint_training_scaled_by_the_step_size():
    """k = 1: theta - phi = inner_lr * (the policy gradient at theta), the pretrained baseline's gradient."""
    grads = {}
    for cls, args in ((ReptileRL, {"inner_steps": 1, "inner_lr": 0.1}), (MAMLRL, {"inner_steps": 0})):
        torch.manual_seed(0)
        algorithm = cls("nav2d", hidden=8, trajectories=3, **args).double()
        algorithm.meta_loss(nav_tasks()).loss.backward()
        grads[cls] = torch.cat([p.grad.flatten() for p in algorithm.parameters()])
    assert torch.allclose(grads[ReptileRL], 0.1 * grads[MAMLRL], rtol=1e-9, atol=1e-13)


def test_config_builds_and_maml_only_settings_are_errors():
    assert ALGORITHMS["reptile-rl"] is ReptileRL
    cfg = load_config("reptile-rl-nav2d")
    algorithm = build_algorithm(cfg)
    assert isinstance(algorithm, ReptileRL) and algorithm.role() == "Reptile" and metric_name(cfg) == "return"
    assert (algorithm.inner_steps, algorithm.eval_inner_steps, algorithm.later_steps_scale) == (3, 3, 0.5)
    for key, value in (("first_order", True), ("oracle", True), ("outer", "promp"), ("clip", 0.2)):
        cfg = load_config("reptile-rl-nav2d")
        cfg.algorithm[key] = value
        with pytest.raises(ConfigError, match="does not take"):
            build_algorithm(cfg)
    with pytest.raises(ValueError, match="inner_steps must be >= 1.*maml-rl with inner_steps = 0"):
        ReptileRL("nav2d", inner_steps=0)
    cfg = load_config("reptile-rl-nav2d")
    cfg.data.dataset = "omniglot"
    with pytest.raises(ConfigError, match="reptile-rl"):
        build_algorithm(cfg)


def test_adaptation_benchmark_compares_each_meta_learner_with_pretrained_and_with_each_other(tmp_path):
    tiny = ["--set", "algorithm.trajectories=2", "--set", "model.hidden=8", "--meta-batch", "2", "--iterations", "1",
            "--val-every", "1", "--val-episodes", "2", "--no-progress", "--threads", "1"]
    names = ("maml-rl-nav2d", "maml-rl-nav2d-pretrained", "reptile-rl-nav2d")
    for name in names:
        assert main(["train", name, "--out", str(tmp_path / name), *tiny]) == 0
    script = Path(__file__).parents[1] / "benchmarks" / "rl_adaptation.py"
    result = subprocess.run([sys.executable, str(script), *(str(tmp_path / n / "best.safetensors") for n in names),
                             "--episodes", "3", "--json"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report["returns_by_steps"]) == {"MAML", "pretrained", "Reptile", "random"}
    for name in ("maml", "reptile"):
        assert isinstance(report[f"{name}_1_step_beats_pretrained_last_step"], bool)
        assert set(report[f"{name}_1_step_minus_pretrained_last_step"]) == {"mean", "ci95"}
    reptile, maml = report["returns_by_steps"]["Reptile"], report["returns_by_steps"]["MAML"]
    for k, d in report["reptile_minus_maml_by_steps"].items():  # paired on the same tasks: the means subtract
        assert d["mean"] == pytest.approx(reptile[k]["mean"] - maml[k]["mean"], abs=1e-4)
