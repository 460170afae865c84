"""Trajectories of a meta-batch: every task's policy (its own adapted ``Params``) on its own environments.

All ``B * N`` environments step together; the ``B`` policies run in one ``vmap``-ed functional call per
step. Randomness comes from the tasks' seeds only: task ``i``'s action noise is drawn from a generator
seeded by ``(seed_i, round)``, so a task's trajectories do not depend on which other tasks share its batch.
"""
from __future__ import annotations

import time
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from .._types import Params
from .family import VecEnvs
from .policy import log_prob, sample_actions

ROUND_SALT = 1_000_003  # round k of a task's sampling (before / after each inner step) has its own stream


class Trajectories(NamedTuple):
    """``observations (B, N, T, O')`` as the policy saw them (with the task parameters for an oracle),
    ``actions (B, N, T, A)`` as sampled (before the environment clips them), ``rewards (B, N, T)``;
    ``log_probs (B, N, T)``: the sampling policy's log-density of each action (the denominators of
    ProMP's likelihood ratios); ``successes (B, N)``: whether each trajectory reached its goal, for
    families whose environments record it (Meta-World), else ``None``."""

    observations: Tensor
    actions: Tensor
    rewards: Tensor
    log_probs: Tensor | None = None
    successes: Tensor | None = None

    def returns(self) -> Tensor:
        """Undiscounted return per task, averaged over its trajectories: ``(B,)``."""
        return self.rewards.sum(-1).mean(-1)

    def success_rates(self) -> Tensor | None:
        """Fraction of each task's trajectories that reached the goal: ``(B,)``, or ``None`` where not recorded."""
        return None if self.successes is None else self.successes.float().mean(-1)


def action_noise(seeds: Tensor, rounds: int, shape: tuple[int, ...]) -> Tensor:
    """Standard normal noise ``(B, *shape)``, task ``i``'s from the generator of ``(seeds[i], rounds)``."""
    noise = [torch.randn(shape, generator=torch.Generator().manual_seed(int(s) * ROUND_SALT + rounds)) for s in seeds.tolist()]
    return torch.stack(noise)


def rollout(envs: VecEnvs, policy: nn.Module, params: Params, seeds: Tensor, rounds: int, horizon: int,
            context: Tensor | None = None, timer: dict[str, float] | None = None) -> Trajectories:
    """Samples ``horizon`` steps of every trajectory in ``envs`` (no gradients).

    Args:
        envs: ``B`` tasks x ``N`` trajectories (``TaskFamily.make_envs``).
        policy: the policy's structure; its weights come from ``params``.
        params: each task's parameters, every tensor with a leading task dimension ``B``.
        seeds: ``(B,)`` task seeds; ``rounds``: which sampling round of the task this is.
        context: ``(B, P)`` appended to every observation (the oracle's task parameters), or ``None``.
        timer: if given, adds the seconds spent in ``"simulation"`` and ``"policy"``.

    Returns: ``Trajectories`` with ``T = horizon``.
    """
    timer = {} if timer is None else timer
    act = vmap(lambda p, o: functional_call(policy, p, (o,)))
    with torch.no_grad():
        started = time.perf_counter()
        obs = envs.reset(seeds)
        timer["simulation"] = timer.get("simulation", 0.0) + time.perf_counter() - started
        b, n = obs.shape[:2]
        params = {k: v.detach() for k, v in params.items()}
        noise = None
        observations, actions, rewards, log_probs = [], [], [], []
        for _ in range(horizon):
            started = time.perf_counter()
            if context is not None:
                obs = torch.cat([obs, context.unsqueeze(1).expand(b, n, context.shape[-1]).to(obs.dtype)], dim=-1)
            output = act(params, obs)  # (B, N, 2A)
            if noise is None:
                noise = action_noise(seeds, rounds, (n, horizon, output.shape[-1] // 2))
            action = sample_actions(output, noise[:, :, len(actions)])
            observations.append(obs)
            actions.append(action)
            log_probs.append(log_prob(output, action))
            timer["policy"] = timer.get("policy", 0.0) + time.perf_counter() - started
            started = time.perf_counter()
            obs, reward = envs.step(action)
            rewards.append(reward)
            timer["simulation"] = timer.get("simulation", 0.0) + time.perf_counter() - started
    successes = getattr(envs, "successes", None)  # environments that record reaching the goal (Meta-World)
    return Trajectories(torch.stack(observations, 2), torch.stack(actions, 2), torch.stack(rewards, 2),
                        torch.stack(log_probs, 2), None if successes is None else successes.clone())
