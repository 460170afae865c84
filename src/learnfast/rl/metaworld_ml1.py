"""Meta-World ML1 ``reach``: a Sawyer arm reaching a goal it cannot see (Yu et al. 2019, "Meta-World"), through
the ``metaworld`` package (needs ``learnfast[rl]``).

A task is the environment's randomisation vector ``(6,)``: the object's start position (3, unused by
reach) and the goal position (3), drawn uniformly from the environment's own ``_random_reset_space``
(``[-0.1, 0.6, 0.02] .. [0.1, 0.7, 0.02]`` and ``[-0.1, 0.8, 0.05] .. [0.1, 0.9, 0.3]``) and kept when the
goal is at least 0.15 from the object in x, y (the condition of reach-v3's own reset, which redraws
forever under a fixed vector that fails it), as ML1 draws its train and test goals; held-out tasks are
fresh draws under their own seeds. Observations are
Meta-World's 39-d partially observable ones (the goal coordinates are zeros), actions 4-d in
``[-1, 1]``, the reward Meta-World's own dense ``reach-v3`` reward, 500-step trajectories (its
``max_path_length``), 10 per task. ``successes`` holds whether each trajectory has reached the goal
(``info["success"]``) by the current step.
"""
from __future__ import annotations

import pickle
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

from .family import TaskFamily
from .simulators import require

ENV_NAME = "reach-v3"
_POOL: list = []  # built reach environments that no ReachEnvs holds (see ReachEnvs)
MIN_GOAL_DISTANCE = 0.15  # reach-v3's reset_model: goal and object at least this far apart in x, y


def _reach_class():
    metaworld = require("metaworld", "ml1-reach")
    return metaworld.env_dict.ALL_V3_ENVIRONMENTS[ENV_NAME]


@lru_cache(maxsize=1)  # building an environment takes a while; the box never changes
def _reset_space() -> tuple[np.ndarray, np.ndarray]:
    env = _reach_class()()
    space = env._random_reset_space
    env.close()
    return space.low, space.high


class ReachEnvs:
    """``B`` goals x ``N`` trajectories of Meta-World reach, stepped one environment after another.

    Building a reach environment costs about 0.3 s (a MuJoCo model), more than 500 of its steps, so
    closed environments go back to a pool and the next sampling sets its task on them (``set_task``;
    ``reset`` then restores the whole simulator state, so a reused environment behaves as a new one).
    """

    def __init__(self, params: Tensor, trajectories: int) -> None:
        types = require("metaworld.types", "ml1-reach")
        cls = _reach_class()
        self.shape = (params.shape[0], trajectories)
        self.envs = [_POOL.pop() if _POOL else cls() for _ in range(params.shape[0] * trajectories)]
        for env, vector in zip(self.envs, [p.double().numpy() for p in params for _ in range(trajectories)]):
            env.set_task(types.Task(env_name=ENV_NAME, data=pickle.dumps(
                {"rand_vec": vector, "env_cls": cls, "partially_observable": True})))
        self.successes = torch.zeros(self.shape, dtype=torch.bool)

    def reset(self, seeds: Tensor) -> Tensor:
        base = seeds.reshape(-1, 1).to(torch.int64) % 2**31
        env_seeds = ((base * 7919 + torch.arange(self.shape[1])) % 2**31).flatten().tolist()
        obs = [env.reset(seed=seed)[0] for env, seed in zip(self.envs, env_seeds)]
        self.successes = torch.zeros(self.shape, dtype=torch.bool)
        return torch.as_tensor(np.stack(obs), dtype=torch.float32).view(*self.shape, -1)

    def step(self, actions: Tensor) -> tuple[Tensor, Tensor]:
        clipped = actions.clamp(-1.0, 1.0).reshape(-1, actions.shape[-1]).double().numpy()
        results = [env.step(a) for env, a in zip(self.envs, clipped)]
        success = torch.as_tensor([info["success"] > 0 for *_, info in results])
        self.successes |= success.view(self.shape)
        return (torch.as_tensor(np.stack([r[0] for r in results]), dtype=torch.float32).view(*self.shape, -1),
                torch.as_tensor([r[1] for r in results], dtype=torch.float32).view(self.shape))

    def close(self) -> None:
        _POOL.extend(self.envs)
        self.envs = []


class ML1Reach(TaskFamily):
    """Goals (and unused object positions) uniform in reach-v3's randomisation box; 39-d observations, 4-d actions."""

    name, obs_dim, action_dim, param_dim, horizon, trajectories = "ml1-reach", 39, 4, 6, 500, 10
    requires = ("gymnasium", "mujoco", "metaworld")

    def sample_params(self, count: int, generator: torch.Generator) -> Tensor:
        low, high = (torch.as_tensor(b, dtype=torch.float32) for b in _reset_space())
        # reach-v3's reset redraws until the goal is MIN_GOAL_DISTANCE from the object: under a fixed task
        # vector closer than that it loops forever, so such vectors are never handed out
        kept = torch.empty(0, low.numel())
        while len(kept) < count:
            draws = low + (high - low) * torch.rand(count, low.numel(), generator=generator)
            kept = torch.cat([kept, draws[(draws[:, :2] - draws[:, 3:5]).norm(dim=1) >= MIN_GOAL_DISTANCE]])
        return kept[:count]

    def make_envs(self, params: Tensor, trajectories: int) -> ReachEnvs:
        return ReachEnvs(params, trajectories)
