"""HalfCheetah task families on gymnasium's MuJoCo simulator (skipped without the learnfast[rl] extra)."""
import numpy as np
import pytest
import torch

gym = pytest.importorskip("gymnasium")
pytest.importorskip("mujoco")

from learnfast.rl import CheetahDirection, CheetahVelocity, GaussianMLP, RLTasks, rollout, task_params, task_seeds  # noqa: E402
from learnfast.rl.cheetah import ENV_ID, env_seeds  # noqa: E402


@pytest.mark.parametrize("family, goal", [(CheetahVelocity(), 0.7), (CheetahDirection(), -1.0)])
def test_reward_is_rewritten_per_task_as_defined(family, goal):
    envs = family.make_envs(torch.tensor([[goal]]), trajectories=2)
    seeds = torch.tensor([5])
    obs = envs.reset(seeds)
    reference = gym.make(ENV_ID)  # the same simulator, stepped alone from the same seed
    ref_obs, _ = reference.reset(seed=env_seeds(seeds, 2)[1])
    assert torch.allclose(obs[0, 1], torch.as_tensor(ref_obs, dtype=torch.float32))
    actions = torch.randn(6, 1, 2, 6, generator=torch.Generator().manual_seed(0)) * 1.5  # some beyond the box
    for a in actions:
        x_before = reference.unwrapped.data.qpos[0]
        obs, reward = envs.step(a)
        clipped = a[0, 1].clamp(-1, 1)
        ref_obs, _, _, _, info = reference.step(clipped.double().numpy())
        velocity = (reference.unwrapped.data.qpos[0] - x_before) / reference.unwrapped.dt
        assert velocity == pytest.approx(info["x_velocity"])
        ctrl = 0.05 * float((clipped ** 2).sum())
        expected = -abs(velocity - goal) - ctrl if isinstance(family, CheetahVelocity) else goal * velocity - ctrl
        assert reward[0, 1].item() == pytest.approx(expected, rel=1e-4, abs=1e-4)
        assert torch.allclose(obs[0, 1], torch.as_tensor(ref_obs, dtype=torch.float32))
    envs.close()


def test_seeded_environments_give_identical_returns():
    family = CheetahVelocity()
    tasks = RLTasks(family).sample(2, torch.Generator().manual_seed(0))
    policy = GaussianMLP(family.obs_dim, family.action_dim, hidden=(8, 8))
    params = {k: v.detach().expand(2, *v.shape) for k, v in policy.named_parameters()}

    def returns(batch):
        envs = family.make_envs(task_params(batch), 2)
        try:
            return rollout(envs, policy, params, task_seeds(batch), 0, 20).rewards
        finally:
            envs.close()

    first = returns(tasks)
    assert torch.equal(first, returns(tasks))
    other = tasks._replace(query_x=tasks.query_x + 1)  # same goals, other seeds: other start states and noise
    assert not torch.equal(first, returns(other))


def test_task_distributions():
    g = torch.Generator().manual_seed(0)
    velocities = CheetahVelocity().sample_params(2000, g)
    assert velocities.min() >= 0 and velocities.max() <= 2 and abs(velocities.mean().item() - 1) < 0.05
    directions = CheetahDirection().sample_params(2000, g)
    assert set(directions.flatten().tolist()) == {-1.0, 1.0} and abs(directions.mean().item()) < 0.1


def test_ml1_reach_tasks_set_the_goal_and_reward_is_meta_worlds():
    pytest.importorskip("metaworld")
    from learnfast.rl import ML1Reach
    from learnfast.rl.metaworld_ml1 import _reach_class

    family = ML1Reach()
    params = family.sample_params(1, torch.Generator().manual_seed(0))
    envs = family.make_envs(params, trajectories=2)
    first = envs.reset(torch.tensor([3]))
    assert first.shape == (1, 2, 39) and torch.all(first[..., -3:] == 0)  # partially observable: the goal is hidden
    reference = envs.envs[1]
    assert np.allclose(reference._target_pos, params[0, 3:].double().numpy(), atol=1e-6)
    assert isinstance(reference, _reach_class())
    actions = torch.randn(3, 1, 2, 4, generator=torch.Generator().manual_seed(1))
    for a in actions:
        obs, reward = envs.step(a)
        # the reward is Meta-World's own, recomputed from the state the step left
        expected, *_ = reference.compute_reward(a[0, 1].clamp(-1, 1).double().numpy(), obs[0, 1].double().numpy())
        assert reward[0, 1].item() == pytest.approx(float(expected), rel=1e-4)
    assert envs.successes.shape == (1, 2)
    envs.close()


def test_ml1_reach_goals_pass_the_environments_own_reset_condition():
    """reach-v3 resets by redrawing until goal and object are 0.15 apart; under a fixed task vector that
    fails it, reset never returns, so every sampled task must already pass."""
    pytest.importorskip("metaworld")
    from learnfast.rl import ML1Reach

    family = ML1Reach()
    params = family.sample_params(500, torch.Generator().manual_seed(0))
    assert params.shape == (500, 6)
    assert ((params[:, :2] - params[:, 3:5]).norm(dim=1) >= 0.15).all()
    again = family.sample_params(500, torch.Generator().manual_seed(0))
    assert torch.equal(params, again)  # seeded: the held-out goals are fixed
    envs = family.make_envs(params[:8], trajectories=1)  # 2 of the first 8 unfiltered draws of this seed hang reset
    assert envs.reset(torch.arange(8)).shape == (8, 1, 39)
    envs.close()


def test_ml1_reach_environments_reused_from_the_pool_behave_as_new_ones():
    pytest.importorskip("metaworld")
    from learnfast.rl import ML1Reach
    from learnfast.rl.metaworld_ml1 import _POOL

    family = ML1Reach()
    params = family.sample_params(2, torch.Generator().manual_seed(5))
    actions = torch.randn(20, 2, 2, 4, generator=torch.Generator().manual_seed(6)).clamp(-1, 1)

    def run(p):
        envs = family.make_envs(p, trajectories=2)
        out = [envs.reset(torch.tensor([1, 2]))]
        for a in actions:
            out += envs.step(a)  # observations, rewards
        built = list(envs.envs)
        envs.close()
        return out, built

    _POOL.clear()
    fresh, built = run(params)
    other, _ = run(params.flip(0))  # the pooled environments under the other goals
    again, rebuilt = run(params)  # and back: the same simulators as the first run
    assert {id(e) for e in rebuilt} == {id(e) for e in built}
    for a, b in zip(fresh, again):
        assert torch.equal(a, b)
    assert not torch.equal(fresh[-1], other[-1])
