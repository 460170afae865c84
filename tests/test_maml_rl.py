"""MAML-RL (algorithm ``maml-rl``): the inner step against hand-computed REINFORCE, the meta-gradient against a
float64 loop reference, seeding, the contract, configs, the trainer and ``learnfast eval``."""
import copy
import json
import subprocess
import sys

import pytest
import torch
from torch import nn
from torch.func import functional_call

from learnfast.algorithms import ALGORITHMS, MAMLRL
from learnfast.algorithms.base import submodule_params
from learnfast.cli import main
from learnfast.rl import Nav2D, RLTasks, TaskFamily, task_params
from learnfast.rl.policy import log_prob
from learnfast.rl.returns import advantages, pack, reinforce_loss
from learnfast.tasks import Task
from learnfast.train.build import build_algorithm, metric_name
from learnfast.train.config import ConfigError, RunConfig, load_config


class LineEnvs:
    """A deterministic 1-d task: observation ``[1, t]``, reward ``-(a - goal)^2`` (no state but the step count)."""

    def __init__(self, goals, trajectories):
        self.goals, self.trajectories, self.t = goals, trajectories, 0

    def obs(self):
        b = self.goals.shape[0]
        return torch.tensor([1.0, float(self.t)], dtype=self.goals.dtype).expand(b, self.trajectories, 2).clone()

    def reset(self, seeds):
        self.t = 0
        return self.obs()

    def step(self, actions):
        self.t += 1
        return self.obs(), -(actions[..., 0] - self.goals[:, :1]).pow(2)

    def close(self):
        pass


class Line(TaskFamily):
    name, obs_dim, action_dim, param_dim, horizon, trajectories = "line", 2, 1, 1, 3, 4

    def sample_params(self, count, generator):
        return torch.rand(count, 1, generator=generator)

    def make_envs(self, params, trajectories):
        return LineEnvs(params, trajectories)


class LinearGaussian(nn.Module):
    """``mean = W o + b``, state-independent ``log_std``: gradients of its log-density have closed forms."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)
        self.log_std = nn.Parameter(torch.tensor([-0.3]))

    def forward(self, obs):
        mean = self.linear(obs)
        return torch.cat([mean, self.log_std.expand_as(mean)], -1)


def on_line(inner_lr=0.3, inner_steps=1):
    torch.manual_seed(0)
    algorithm = MAMLRL("nav2d", inner_lr=inner_lr, inner_steps=inner_steps, trajectories=4)
    algorithm.family, algorithm.model = Line(), LinearGaussian()
    return algorithm


def nav_tasks(count=2, seed=0, dtype=torch.float32):
    return RLTasks(Nav2D()).sample(count, torch.Generator().manual_seed(seed)).to(dtype=dtype)


def test_inner_step_equals_hand_computed_reinforce_gradient():
    algorithm = on_line()
    batch = RLTasks(Line()).sample(2, torch.Generator().manual_seed(3))
    theta = submodule_params(algorithm.meta_params())
    fast, rounds = algorithm.rounds(batch, 1, theta, "second-order")
    obs, actions, rewards = rounds[0].observations, rounds[0].actions, rounds[0].rewards
    assert rounds[0].successes is None  # the line task records none
    adv = advantages(obs, rewards, algorithm.gamma)
    w, b, s = theta["linear.weight"].detach(), theta["linear.bias"].detach(), theta["log_std"].detach()
    for i in range(2):
        o, a, A = obs[i], actions[i][..., 0], adv[i]  # (N, T, 2), (N, T), (N, T)
        mean = o @ w[0] + b[0]
        z = (a - mean) / s.exp() ** 2  # d log pi / d mean
        grad_w = -(z * A).unsqueeze(-1).mul(o).mean((0, 1))  # d/dW of -mean(log pi * A)
        grad_b = -(z * A).mean()
        grad_s = -(((a - mean) ** 2 / s.exp() ** 2 - 1) * A).mean()
        assert torch.allclose(fast[i]["linear.weight"], w - 0.3 * grad_w, atol=1e-6)
        assert torch.allclose(fast[i]["linear.bias"], b - 0.3 * grad_b, atol=1e-6)
        assert torch.allclose(fast[i]["log_std"], s - 0.3 * grad_s, atol=1e-6)
        assert not torch.allclose(fast[i]["linear.weight"], w)  # the step moved
    # the advantages are of the rewards -(a - goal)^2 the tasks define
    goals = task_params(batch)[:, 0]
    assert torch.allclose(rewards, -(actions[..., 0] - goals.view(2, 1, 1)) ** 2)


@pytest.mark.parametrize("first_order", [False, True])
def test_meta_gradient_matches_a_float64_loop_reference(first_order):
    torch.manual_seed(0)
    algorithm = MAMLRL("nav2d", hidden=8, inner_lr=0.1, trajectories=3, first_order=first_order).double()
    batch = nav_tasks(2, dtype=torch.float64)
    algorithm.meta_loss(batch).loss.backward()
    got = {k: p.grad.clone() for k, p in algorithm.model.named_parameters()}

    # the same trajectories (they are fixed by the task seeds), the meta-gradient by plain autograd, task by task
    with torch.no_grad():
        _, rounds = algorithm.rounds(batch, 1, submodule_params(algorithm.meta_params()), "first-order")
    theta = {k: p.detach().clone().requires_grad_() for k, p in algorithm.model.named_parameters()}
    total = 0.0
    for i in range(2):
        obs0, act0, rew0 = (x[i:i + 1] for x in rounds[0][:3])
        obs1, act1, rew1 = (x[i:i + 1] for x in rounds[1][:3])
        inner = reinforce_loss(functional_call(algorithm.model, theta, (obs0[0],)), pack(act0[0], advantages(obs0, rew0, 0.99)[0]))
        grads = torch.autograd.grad(inner, list(theta.values()), create_graph=not first_order)
        phi = {k: p - 0.1 * g for (k, p), g in zip(theta.items(), grads)}
        total = total + reinforce_loss(functional_call(algorithm.model, phi, (obs1[0],)), pack(act1[0], advantages(obs1, rew1, 0.99)[0]))
    expected = torch.autograd.grad(total / 2, list(theta.values()))
    for (k, g), e in zip(got.items(), expected):
        assert torch.allclose(g, e, rtol=1e-9, atol=1e-12), k


def test_second_order_term_matters_and_zero_steps_is_plain_policy_gradient():
    grads = {}
    for first_order in (False, True):
        torch.manual_seed(0)
        algorithm = MAMLRL("nav2d", hidden=8, trajectories=3, first_order=first_order)
        algorithm.meta_loss(nav_tasks()).loss.backward()
        grads[first_order] = torch.cat([p.grad.flatten() for p in algorithm.parameters()])
    assert not torch.allclose(grads[False], grads[True])
    torch.manual_seed(0)
    pretrained = MAMLRL("nav2d", hidden=8, trajectories=3, inner_steps=0)
    batch = nav_tasks()
    pretrained.meta_loss(batch).loss.backward()
    _, (first,) = pretrained.rounds(batch, 0, submodule_params(pretrained.meta_params()), "first-order")
    adv = advantages(first.observations, first.rewards, 0.99)
    plain = torch.stack([reinforce_loss(pretrained.model(first.observations[i]), pack(first.actions[i], adv[i])) for i in range(2)]).mean()
    expected = torch.autograd.grad(plain, list(pretrained.model.parameters()))
    for p, e in zip(pretrained.model.parameters(), expected):
        assert torch.allclose(p.grad, e, atol=1e-6)


@pytest.mark.parametrize("name", ["maml-rl", "reptile-rl"])
def test_contract_and_seeding(name):
    torch.manual_seed(0)
    algorithm = ALGORITHMS[name]("nav2d", hidden=8, trajectories=3)
    batch = nav_tasks(2)
    before = copy.deepcopy(algorithm.state_dict())
    out = algorithm.meta_loss(batch)
    assert torch.isfinite(out.loss) and out.predictions.shape == (2, 1)
    assert torch.allclose(out.loss, -out.predictions.mean())  # the value is minus the mean return
    out.loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in algorithm.parameters())
    algorithm.eval()
    first = algorithm(batch)
    assert first.shape == (2, 1) and torch.equal(first, algorithm(batch))  # same tasks, same seeds: same returns
    assert all(torch.equal(v, algorithm.state_dict()[k]) for k, v in before.items())  # forward never mutates
    curve = algorithm.adaptation_curve(batch, 2)
    assert curve.shape == (2, 3) and torch.equal(curve[:, -1:], algorithm(batch, inner_steps=2))
    assert not torch.equal(algorithm(nav_tasks(2, seed=1)), first)


def test_later_steps_scale_halves_every_step_after_the_first():
    """Round k's trajectories depend only on the policy after k steps, so with the same first step the
    second step of ``later_steps_scale = 0.5`` is exactly half the second step of ``1``."""
    batch = nav_tasks(2)
    fast = {}
    for scale in (1.0, 0.5):
        torch.manual_seed(0)
        algorithm = MAMLRL("nav2d", hidden=8, trajectories=3, later_steps_scale=scale)
        theta = {k: v.detach() for k, v in submodule_params(algorithm.meta_params()).items()}
        fast[scale] = [algorithm.rounds(batch, steps, theta, "first-order")[0] for steps in (1, 2)]
    for i in range(2):
        for k in fast[1.0][0][i]:
            assert torch.equal(fast[1.0][0][i][k], fast[0.5][0][i][k])  # the first step is unscaled
            full = fast[1.0][1][i][k] - fast[1.0][0][i][k]
            assert full.abs().sum() > 0
            assert torch.allclose(fast[0.5][1][i][k] - fast[0.5][0][i][k], 0.5 * full, atol=1e-7), k
    with pytest.raises(ValueError, match="later_steps_scale must be > 0"):
        MAMLRL("nav2d", later_steps_scale=0.0)


class ReachingLineEnvs(LineEnvs):
    """The line task recording, like Meta-World, whether each trajectory came within 0.5 of its goal."""

    def reset(self, seeds):
        self.successes = torch.zeros(self.goals.shape[0], self.trajectories, dtype=torch.bool)
        return super().reset(seeds)

    def step(self, actions):
        self.successes |= (actions[..., 0] - self.goals[:, :1]).abs() < 0.5
        return super().step(actions)


class ReachingLine(Line):
    def make_envs(self, params, trajectories):
        return ReachingLineEnvs(params, trajectories)


def test_success_rates_are_reported_where_the_environments_record_them(tmp_path, monkeypatch):
    algorithm = on_line()
    algorithm.family = ReachingLine()
    batch = RLTasks(ReachingLine()).sample(3, torch.Generator().manual_seed(1))
    curves = algorithm.adaptation_curves(batch, 2)
    _, rounds = algorithm.rounds(batch, 2, submodule_params(algorithm.meta_params()), "first-order")
    goals = task_params(batch)[:, 0].view(3, 1, 1)
    for k, r in enumerate(rounds):
        reached = ((r.actions[..., 0] - goals).abs() < 0.5).any(-1).float().mean(-1)  # (B,) from the trajectories
        assert torch.equal(curves["success"][:, k], reached) and torch.equal(curves["return"][:, k], r.returns())
    assert 0 < curves["success"].mean() < 1  # neither trivially all nor none
    assert "success" not in on_line().adaptation_curves(RLTasks(Line()).sample(2, torch.Generator().manual_seed(1)), 1)
    monkeypatch.chdir(tmp_path)  # the report writes its PNG here
    torch.manual_seed(0)
    algorithm = MAMLRL("nav2d", hidden=8, inner_lr=0.3, trajectories=4, eval_inner_steps=2)
    algorithm.family = ReachingLine()
    algorithm.model = algorithm.new_policy()  # the Gaussian MLP of the line's shapes, as the random baseline builds it
    report = algorithm.extra_report(RLTasks(ReachingLine()), 4, 0)
    assert set(report["success_by_steps"]) == {"MAML", "random"} and len(report["success_by_steps"]["MAML"]) == 3
    assert all(0.0 <= v["mean"] <= 1.0 for v in report["success_by_steps"]["MAML"].values()) and "%" in report["success"]


def test_oracle_policy_sees_the_goal():
    algorithm = MAMLRL("nav2d", hidden=8, trajectories=2, inner_steps=0, oracle=True)
    batch = nav_tasks(2)
    _, (trajectories,) = algorithm.rounds(batch, 0, submodule_params(algorithm.meta_params()), "first-order")
    assert trajectories.observations.shape[-1] == 4
    assert torch.equal(trajectories.observations[:, :, 5, 2:], task_params(batch).unsqueeze(1).expand(2, 2, 2))


def test_configs_build_and_bad_combinations_are_errors():
    assert ALGORITHMS["maml-rl"] is MAMLRL
    for name, role in (("maml-rl-nav2d", "MAML"), ("maml-rl-nav2d-pretrained", "pretrained"), ("maml-rl-nav2d-oracle", "oracle")):
        cfg = load_config(name)
        assert build_algorithm(cfg).role() == role and metric_name(cfg) == "return"
    cfg = load_config("maml-rl-nav2d")
    cfg.data.dataset = "omniglot"
    with pytest.raises(ConfigError, match="meta-RL task famil"):
        build_algorithm(cfg)
    cfg = RunConfig(algorithm={"name": "maml"})
    cfg.data.dataset, cfg.model.backbone = "nav2d", "mlp"
    with pytest.raises(ConfigError, match="maml is not a meta-RL method"):
        build_algorithm(cfg)
    cfg = load_config("maml-rl-nav2d")
    cfg.model.backbone = "conv4"
    with pytest.raises(ConfigError, match='backbone = "mlp"'):
        build_algorithm(cfg)
    cfg = load_config("maml-rl-nav2d")
    cfg.algorithm["hidden"] = 50
    with pytest.raises(ConfigError, match="does not take"):
        build_algorithm(cfg)
    with pytest.raises(ValueError, match="drop first_order"):
        MAMLRL("nav2d", inner_steps=0, first_order=True)


@pytest.mark.parametrize("algorithm, curve", [("maml-rl", "MAML"), ("reptile-rl", "Reptile")])
def test_train_then_eval_json_reports_returns_after_each_step(algorithm, curve, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    tiny = ["--set", "algorithm.trajectories=2", "--set", "model.hidden=8", "--meta-batch", "2", "--iterations", "2",
            "--val-every", "2", "--val-episodes", "2", "--no-progress", "--threads", "1"]
    assert main(["train", f"{algorithm}-nav2d", "--out", str(tmp_path / "run"), *tiny]) == 0
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "run" / "best.safetensors"), "--episodes", "3", "--json", "--no-progress"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["algorithm"] == algorithm and report["metric"] == "return" and report["episodes"] == 3
    by_steps = report["returns_by_steps"]
    assert set(by_steps) == {curve, "random"} and set(by_steps[curve]) == {"0", "1", "2", "3"}
    assert by_steps[curve]["3"]["mean"] == pytest.approx(report["mean"])  # forward's figure: the last step
    assert (tmp_path / report["adaptation_png"]).is_file()


def test_missing_simulator_is_one_line_naming_the_extra(tmp_path):
    code = ("import sys; sys.modules['gymnasium'] = None; from learnfast.cli import main; "
            f"sys.exit(main(['train', 'maml-rl-cheetah-vel', '--out', {str(tmp_path / 'r')!r}, '--no-progress']))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install learnfast[rl]" in lines[0] and "gymnasium" in lines[0]


# -- ProMP (outer = "promp") --------------------------------------------------------------------

def test_ratio_losses_against_hand_values():
    torch.manual_seed(0)
    output = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)  # 2-d actions: mean, log_std
    actions, adv = torch.randn(6, 2, dtype=torch.float64), torch.tensor([-1.0, 1.0, 0.5, -1.0, 2.0, -0.5], dtype=torch.float64)
    from learnfast.rl.returns import clipped_loss, likelihood_ratio_loss, pack_ratio
    old = log_prob(output, actions).detach()
    on_policy = pack_ratio(actions, adv, old)
    # at the sampling policy the likelihood-ratio objective has REINFORCE's gradient
    g_ratio, = torch.autograd.grad(likelihood_ratio_loss(output, on_policy), output)
    g_reinforce, = torch.autograd.grad(reinforce_loss(output, pack(actions, adv)), output)
    assert torch.allclose(g_ratio, g_reinforce, atol=1e-14)
    # away from it: -mean(r A) and the clipped surrogate, by hand
    shifted = pack_ratio(actions, adv, old - torch.linspace(-0.6, 0.6, 6, dtype=torch.float64))  # r = exp(that shift)
    r = torch.exp(torch.linspace(-0.6, 0.6, 6, dtype=torch.float64))
    assert torch.allclose(likelihood_ratio_loss(output, shifted), -(r * adv).mean())
    expected = -torch.minimum(r * adv, r.clamp(0.7, 1.3) * adv).mean()
    assert torch.allclose(clipped_loss(output, shifted, 0.3), expected)
    g, = torch.autograd.grad(clipped_loss(output, shifted, 0.3), output)
    frozen = ((r > 1.3) & (adv > 0)) | ((r < 0.7) & (adv < 0))  # where the clip holds the objective flat
    assert frozen.any() and torch.all(g[frozen] == 0) and torch.all(g[~frozen].abs().sum(-1) > 0)


def promp(outer_steps=1, first_order=False, dtype=torch.float64):
    torch.manual_seed(0)
    return MAMLRL("nav2d", hidden=8, inner_lr=0.1, trajectories=3, first_order=first_order, outer="promp",
                  outer_steps=outer_steps).to(dtype)


def promp_reference(algorithm, batch, rounds):
    """ProMP's meta-gradient by plain autograd, task by task, on given trajectories (from the sampling policies)."""
    theta = {k: p.detach().clone().requires_grad_() for k, p in algorithm.model.named_parameters()}
    total = 0.0
    for i in range(batch.batch_size):
        first, last = rounds[0], rounds[1]
        a0, a1 = advantages(first.observations[i:i + 1], first.rewards[i:i + 1], 0.99)[0], advantages(last.observations[i:i + 1], last.rewards[i:i + 1], 0.99)[0]
        ratio0 = torch.exp(log_prob(functional_call(algorithm.model, theta, (first.observations[i],)), first.actions[i]) - first.log_probs[i])
        grads = torch.autograd.grad(-(ratio0 * a0).mean(), list(theta.values()), create_graph=True)
        phi = {k: p - 0.1 * g for (k, p), g in zip(theta.items(), grads)}
        ratio1 = torch.exp(log_prob(functional_call(algorithm.model, phi, (last.observations[i],)), last.actions[i]) - last.log_probs[i])
        total = total - torch.minimum(ratio1 * a1, ratio1.clamp(0.7, 1.3) * a1).mean()
    return torch.autograd.grad(total / batch.batch_size, list(theta.values()))


def test_promp_meta_gradient_matches_a_float64_loop_reference_and_reuses_its_trajectories(monkeypatch):
    algorithm = promp(outer_steps=2)
    assert algorithm.steps_per_batch == 2
    batch = nav_tasks(2, dtype=torch.float64)
    made = []
    make_envs = algorithm.family.make_envs
    monkeypatch.setattr(algorithm.family, "make_envs", lambda *a: made.append(1) or make_envs(*a))
    algorithm.meta_loss(batch).loss.backward()
    assert len(made) == 1  # one sampling of the batch (all its rounds in one set of environments)
    rounds = algorithm._sampled[1]
    for got, expected in zip([p.grad for p in algorithm.model.parameters()], promp_reference(algorithm, batch, rounds)):
        assert torch.allclose(got, expected, rtol=1e-9, atol=1e-12)
    # the trainer's next step on the same batch: the weights moved, the trajectories are reused and re-weighted
    with torch.no_grad():
        for p in algorithm.model.parameters():
            p -= 0.05 * p.grad
            p.grad = None
    algorithm.meta_loss(batch).loss.backward()
    assert len(made) == 1
    for got, expected in zip([p.grad for p in algorithm.model.parameters()], promp_reference(algorithm, batch, rounds)):
        assert torch.allclose(got, expected, rtol=1e-9, atol=1e-12)
    algorithm.meta_loss(nav_tasks(2, seed=1, dtype=torch.float64))  # another batch: sampled afresh
    assert len(made) == 2


def test_promp_settings_are_checked():
    with pytest.raises(ValueError, match='settings of outer = "promp"'):
        MAMLRL("nav2d", outer_steps=5)
    with pytest.raises(ValueError, match="unknown outer"):
        MAMLRL("nav2d", outer="trpo")
    with pytest.raises(ValueError, match="0 < clip < 1"):
        MAMLRL("nav2d", outer="promp", clip=1.5)
    assert MAMLRL("nav2d", outer="promp").steps_per_batch == 5 and MAMLRL("nav2d").steps_per_batch == 1


def tiny_promp_cfg(iterations=4, checkpoint_every=2):
    cfg = load_config("maml-rl-nav2d")
    cfg.algorithm.update(trajectories=2, outer="promp", outer_steps=2)
    cfg.model.hidden = 8
    for key, value in dict(meta_batch=2, iterations=iterations, checkpoint_every=checkpoint_every, val_every=100, val_episodes=2).items():
        setattr(cfg.train, key, value)
    return cfg


def test_trainer_reuses_each_batch_for_promp_steps_and_resumes_bit_for_bit(tmp_path):
    from learnfast.train.trainer import Trainer

    straight = Trainer(tiny_promp_cfg(), tmp_path / "a", progress=False)
    sampled = []
    sample = straight.train_source.sample
    straight.train_source.sample = lambda *a: sampled.append(1) or sample(*a)
    straight.fit()
    assert len(sampled) == 2  # 4 outer steps on 2 meta-batches
    half = tiny_promp_cfg()
    half.train.iterations = 2
    Trainer(half, tmp_path / "b", progress=False).fit()
    resumed = Trainer(tiny_promp_cfg(), tmp_path / "b", progress=False)
    resumed.fit(resume=True)
    for k, v in straight.algorithm.state_dict().items():
        assert torch.equal(resumed.algorithm.state_dict()[k], v), k
    with pytest.raises(ConfigError, match="multiples of 2"):
        Trainer(tiny_promp_cfg(checkpoint_every=3), tmp_path / "c", progress=False)
