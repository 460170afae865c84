"""Meta-reinforcement learning: task families, the Gaussian MLP policy, returns and trajectories.

The families by ``[data] dataset`` name; ``nav2d`` is plain tensors, the MuJoCo families need the
``learnfast[rl]`` extra (gymnasium, mujoco, metaworld), imported only when their environments are made.
"""
from __future__ import annotations

from .cheetah import CheetahDirection, CheetahVelocity
from .family import TaskFamily, VecEnvs
from .metaworld_ml1 import ML1Reach
from .nav2d import Nav2D
from .policy import GaussianMLP
from .sampler import Trajectories, rollout
from .tasks import RLTasks, task_params, task_seeds

FAMILIES: dict[str, type[TaskFamily]] = {"nav2d": Nav2D, "cheetah-vel": CheetahVelocity, "cheetah-dir": CheetahDirection,
                                         "ml1-reach": ML1Reach}
RL_DATASETS = {
    "nav2d": "2D point navigation: goals uniform in [-0.5, 0.5]^2, reward -distance, 100 steps (MAML paper; algorithms maml-rl, reptile-rl)",
    "cheetah-vel": "MuJoCo HalfCheetah, goal velocity U[0, 2], reward -|v - g| - 0.05|a|^2, 200 steps (needs learnfast[rl]; algorithms maml-rl, reptile-rl)",
    "cheetah-dir": "MuJoCo HalfCheetah, direction +-1, reward d v - 0.05|a|^2, 200 steps (needs learnfast[rl]; algorithms maml-rl, reptile-rl)",
    "ml1-reach": "Meta-World ML1 reach-v3: hidden goals, Meta-World's dense reward, 500 steps (needs learnfast[rl]; algorithms maml-rl, reptile-rl)",
}


def task_family(name: str) -> TaskFamily:
    """The task family registered as ``name``."""
    if name not in FAMILIES:
        raise ValueError(f"unknown meta-RL task family {name!r}; choose one of {sorted(FAMILIES)}")
    return FAMILIES[name]()


__all__ = ["FAMILIES", "RL_DATASETS", "CheetahDirection", "CheetahVelocity", "GaussianMLP", "ML1Reach", "Nav2D", "RLTasks",
           "TaskFamily", "Trajectories", "VecEnvs", "rollout", "task_family", "task_params", "task_seeds"]
