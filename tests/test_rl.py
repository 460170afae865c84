"""learnfast.rl without simulators: 2D navigation, returns, the linear baseline, the policy, the sampler."""
import math

import pytest
import torch

from learnfast.rl import GaussianMLP, Nav2D, RLTasks, rollout, task_family, task_params, task_seeds
from learnfast.rl.nav2d import nav2d_reward
from learnfast.rl.policy import log_prob, sample_actions
from learnfast.rl.returns import advantages, baseline_features, discounted_returns, linear_baseline


def test_nav2d_reward_is_minus_the_distance_after_a_clipped_step():
    goals = torch.tensor([[0.3, -0.2], [-0.5, 0.5]])
    envs = Nav2D().make_envs(goals, trajectories=2)
    assert torch.equal(envs.reset(torch.tensor([1, 2])), torch.zeros(2, 2, 2))
    actions = torch.tensor([[[0.5, 3.0], [-1.0, 0.0]], [[0.0, 0.0], [2.0, -2.0]]])  # (B, N, 2); beyond +-1 is clipped
    position, reward = envs.step(actions)
    expected = torch.tensor([[[0.05, 0.1], [-0.1, 0.0]], [[0.0, 0.0], [0.1, -0.1]]])
    assert torch.allclose(position, expected)
    by_hand = torch.tensor([[math.hypot(0.05 - 0.3, 0.1 + 0.2), math.hypot(-0.1 - 0.3, 0.0 + 0.2)],
                            [math.hypot(0.5, 0.5), math.hypot(0.1 + 0.5, -0.1 - 0.5)]])
    assert torch.allclose(reward, -by_hand)
    assert torch.allclose(nav2d_reward(position, goals.unsqueeze(1)), -by_hand)
    position, _ = envs.step(actions)  # positions accumulate
    assert torch.allclose(position, 2 * expected)


def test_nav2d_goals_are_uniform_in_the_square_and_seeded():
    goals = Nav2D().sample_params(4000, torch.Generator().manual_seed(0))
    assert goals.shape == (4000, 2) and goals.abs().max() <= 0.5 and goals.abs().max() > 0.49
    assert goals.mean(0).abs().max() < 0.02
    assert torch.equal(goals, Nav2D().sample_params(4000, torch.Generator().manual_seed(0)))


def test_task_layout_round_trips():
    batch = RLTasks(Nav2D()).sample(3, torch.Generator().manual_seed(1))
    assert batch.support_x.shape == (3, 1, 2) and batch.query_x.shape == (3, 1) and batch.query_x.dtype == torch.int64
    assert task_params(batch).shape == (3, 2) and task_seeds(batch).shape == (3,)


def test_discounted_returns_by_hand():
    rewards = torch.tensor([[1.0, 2.0, 3.0]])
    assert torch.allclose(discounted_returns(rewards, 0.5), torch.tensor([[1 + 0.5 * 2 + 0.25 * 3, 2 + 0.5 * 3, 3.0]]))
    assert torch.allclose(discounted_returns(rewards, 1.0), torch.tensor([[6.0, 5.0, 3.0]]))


def test_linear_baseline_recovers_returns_that_are_linear_in_its_features():
    g = torch.Generator().manual_seed(0)
    obs = torch.randn(2, 3, 7, 2, generator=g, dtype=torch.float64)
    coeffs = torch.randn(2, baseline_features(obs).shape[-1], generator=g, dtype=torch.float64)
    coeffs[:, -4:-1] = 0.0  # the time features are tiny (t / 100): the ridge term would bias their weights
    returns = torch.einsum("bntf,bf->bnt", baseline_features(obs), coeffs)
    assert torch.allclose(linear_baseline(obs, returns), returns, atol=1e-3)
    adv = advantages(obs, torch.randn(2, 3, 7, generator=g, dtype=torch.float64), 0.99)
    assert torch.allclose(adv.flatten(1).mean(1), torch.zeros(2, dtype=torch.float64), atol=1e-9)
    assert torch.allclose(adv.flatten(1).std(1), torch.ones(2, dtype=torch.float64), atol=1e-6)


def test_gaussian_log_prob_matches_torch_distributions():
    policy = GaussianMLP(3, 2, hidden=(5, 5))
    with torch.no_grad():
        policy.log_std.copy_(torch.tensor([0.3, -0.4]))
    obs, actions = torch.randn(4, 3), torch.randn(4, 2)
    output = policy(obs)
    mean, std = output[:, :2], output[:, 2:].exp()
    expected = torch.distributions.Normal(mean, std).log_prob(actions).sum(-1)
    assert torch.allclose(log_prob(output, actions), expected, atol=1e-6)
    noise = torch.randn(4, 2)
    assert torch.allclose(sample_actions(output, noise), mean + std * noise)


def test_rollout_is_seeded_by_the_tasks_alone():
    family, policy = task_family("nav2d"), GaussianMLP(2, 2, hidden=(8, 8))
    tasks = RLTasks(family).sample(3, torch.Generator().manual_seed(2))
    params = {k: v.expand(3, *v.shape) for k, v in policy.named_parameters()}

    def run(batch, rounds=0):
        b = batch.batch_size
        return rollout(family.make_envs(task_params(batch), 4), policy, {k: v[:b] for k, v in params.items()},
                       task_seeds(batch), rounds, family.horizon)

    first, again = run(tasks), run(tasks)
    assert torch.equal(first.rewards, again.rewards) and torch.equal(first.actions, again.actions)
    alone = run(type(tasks)(*(t[1:2] for t in tasks)))  # task 1 in a batch of its own
    assert torch.equal(alone.rewards[0], first.rewards[1])
    assert not torch.equal(run(tasks, rounds=1).actions, first.actions)  # another sampling round, other noise
    assert first.observations.shape == (3, 4, 100, 2) and first.returns().shape == (3,)


def test_unknown_family_names_the_choices():
    with pytest.raises(ValueError, match="nav2d"):
        task_family("nav3d")
