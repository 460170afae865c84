"""HalfCheetah with a goal velocity or a goal direction, the MAML paper's locomotion task families
(Finn et al. 2017, section 5.3), on gymnasium's MuJoCo ``HalfCheetah-v5`` (needs ``learnfast[rl]``).

The simulator, observation (17-d: joint positions without the x position, and velocities) and 6-d
action box ``[-1, 1]`` are gymnasium's; the reward is rewritten per task as the MAML authors' code does
(``rllab/envs/mujoco/half_cheetah_env_rand*.py``), with ``v`` the forward velocity and ``a`` the
action clipped to the box:

``cheetah-vel``  goal velocity ``g ~ U[0, 2]``:   ``r = -|v - g| - 0.05 ||a||^2``
``cheetah-dir``  direction ``d = +-1`` (even odds): ``r = d v - 0.05 ||a||^2``

Trajectories last 200 steps; 40 per task and inner step in the paper (``trajectories``).
Departures: ``v`` is gymnasium's ``x_velocity`` (the torso's x displacement over a control step)
where rllab read the torso's centre-of-mass velocity, and the observation leaves out rllab's extra
torso centre-of-mass coordinates. A meta-batch runs as one ``gymnasium.vector.SyncVectorEnv`` of
``B * N`` simulators.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .family import TaskFamily
from .simulators import require

ENV_ID = "HalfCheetah-v5"
CTRL_COST = 0.05  # 1e-1 * 0.5 in the authors' code
MAX_VELOCITY = 2.0


def velocity_reward(velocity: Tensor, actions: Tensor, goal: Tensor) -> Tensor:
    """``-|v - g| - 0.05 ||clip(a)||^2``: ``velocity (...)``, ``actions (..., A)``, ``goal (...)`` -> ``(...)``."""
    return -(velocity - goal).abs() - CTRL_COST * actions.clamp(-1.0, 1.0).pow(2).sum(-1)


def direction_reward(velocity: Tensor, actions: Tensor, direction: Tensor) -> Tensor:
    """``d v - 0.05 ||clip(a)||^2``: ``velocity (...)``, ``actions (..., A)``, ``direction (...)`` in {-1, 1} -> ``(...)``."""
    return direction * velocity - CTRL_COST * actions.clamp(-1.0, 1.0).pow(2).sum(-1)


def env_seeds(seeds: Tensor, trajectories: int) -> list[int]:
    """One simulator seed per trajectory ``(B * N,)`` from the tasks' seeds ``(B,)``: distinct, and fixed by the task's seed."""
    base = seeds.reshape(-1, 1).to(torch.int64) % 2**31
    return ((base * 7919 + torch.arange(trajectories)) % 2**31).flatten().tolist()


class CheetahEnvs:
    """``B`` tasks x ``N`` trajectories of HalfCheetah in one synchronous gymnasium vector env."""

    def __init__(self, params: Tensor, trajectories: int, reward) -> None:
        gym = require("gymnasium", "HalfCheetah")
        require("mujoco", "HalfCheetah")
        self.params, self.trajectories, self.reward = params[:, 0], trajectories, reward
        self.shape = (params.shape[0], trajectories)
        self.envs = gym.make_vec(ENV_ID, num_envs=params.shape[0] * trajectories, vectorization_mode="sync")

    def reset(self, seeds: Tensor) -> Tensor:
        obs, _ = self.envs.reset(seed=env_seeds(seeds, self.trajectories))
        return torch.as_tensor(obs, dtype=torch.float32).view(*self.shape, -1)

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor]:
        clipped = actions.clamp(-1.0, 1.0)
        obs, _, _, _, info = self.envs.step(clipped.reshape(-1, clipped.shape[-1]).numpy().astype(np.float64))
        velocity = torch.as_tensor(info["x_velocity"], dtype=torch.float32).view(self.shape)
        rewards = self.reward(velocity, clipped, self.params.unsqueeze(1))
        return torch.as_tensor(obs, dtype=torch.float32).view(*self.shape, -1), rewards

    def close(self) -> None:
        self.envs.close()


class CheetahVelocity(TaskFamily):
    """Goal velocities uniform in ``[0, 2]``; ``r = -|v - g| - 0.05 ||a||^2``."""

    name, obs_dim, action_dim, param_dim, horizon, trajectories = "cheetah-vel", 17, 6, 1, 200, 40
    requires = ("gymnasium", "mujoco")

    def sample_params(self, count: int, generator: torch.Generator) -> Tensor:
        return torch.rand(count, 1, generator=generator) * MAX_VELOCITY

    def make_envs(self, params: Tensor, trajectories: int) -> CheetahEnvs:
        return CheetahEnvs(params, trajectories, velocity_reward)


class CheetahDirection(TaskFamily):
    """Directions forward (+1) or backward (-1) with even odds; ``r = d v - 0.05 ||a||^2``."""

    name, obs_dim, action_dim, param_dim, horizon, trajectories = "cheetah-dir", 17, 6, 1, 200, 40
    requires = ("gymnasium", "mujoco")

    def sample_params(self, count: int, generator: torch.Generator) -> Tensor:
        return torch.randint(0, 2, (count, 1), generator=generator).float() * 2 - 1

    def make_envs(self, params: Tensor, trajectories: int) -> CheetahEnvs:
        return CheetahEnvs(params, trajectories, direction_reward)
