"""Where a MAML-RL meta-iteration's time goes, on this CPU: simulation, policy, meta-gradient.

Rows, in one process, for each ``--config`` (default: the nav2d and HalfCheetah-velocity configs):

``env steps/s (simulation)``  environment steps per second of the vectorised sampler's environments
                              alone (``meta_batch x trajectories`` of them, the config's; random actions)
``env steps/s (sampler)``     the same with the policy choosing the actions (``learnfast.rl.rollout``)
``s / meta-iteration``        one trainer iteration: ``meta_loss`` (trajectories before and after the inner
                              step, the inner step) and its backward, median of ``--rounds``
``simulation / policy / meta-gradient``  its split: seconds in the environments, in the policy's
                              forward passes while sampling, and the rest (baseline, inner step, outer
                              surrogate and backward)

    python benchmarks/rl_speed.py --threads 1 --rounds 3 --json
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from learnfast.algorithms.base import submodule_params
from learnfast.rl import rollout, task_params, task_seeds
from learnfast.train.build import build_algorithm, build_source
from learnfast.train.config import load_config


def simulation_rate(algorithm, batch, steps: int) -> float:
    """Environment steps per second with random actions (no policy)."""
    family = algorithm.family
    envs = family.make_envs(task_params(batch), algorithm.trajectories)
    envs.reset(task_seeds(batch))
    shape = (batch.batch_size, algorithm.trajectories, family.action_dim)
    actions = torch.randn(steps, *shape, generator=torch.Generator().manual_seed(0))
    started = time.perf_counter()
    for t in range(steps):
        envs.step(actions[t])
    seconds = time.perf_counter() - started
    envs.close()
    return steps * shape[0] * shape[1] / seconds


def measure(config: str, rounds: int, sim_steps: int | None) -> dict:
    cfg = load_config(config)
    algorithm = build_algorithm(cfg)
    batch = build_source(cfg, "train", 1, 1, 1).sample(cfg.train.meta_batch, torch.Generator().manual_seed(0))
    family, b, n = algorithm.family, cfg.train.meta_batch, algorithm.trajectories
    steps = family.horizon if sim_steps is None else sim_steps
    sim_rate = simulation_rate(algorithm, batch, steps)
    params = {k: v.detach().expand(b, *v.shape) for k, v in submodule_params(algorithm.meta_params()).items()}
    envs = family.make_envs(task_params(batch), n)
    started = time.perf_counter()
    rollout(envs, algorithm.model, params, task_seeds(batch), 0, steps)
    sampler_rate = b * n * steps / (time.perf_counter() - started)
    envs.close()
    totals, splits = [], []
    for _ in range(rounds):
        timer: dict[str, float] = {}
        rounds_of = algorithm.rounds

        def timed(batch, steps, params, memory, timer_=None):  # the same call meta_loss makes, with a timer
            return rounds_of(batch, steps, params, memory, timer)

        algorithm.rounds = timed
        started = time.perf_counter()
        out = algorithm.meta_loss(batch)
        out.loss.backward()
        total = time.perf_counter() - started
        del algorithm.rounds
        algorithm.zero_grad(set_to_none=True)
        totals.append(total)
        splits.append({"simulation": timer["simulation"], "policy": timer["policy"],
                       "meta-gradient": total - timer["simulation"] - timer["policy"]})
    best = totals.index(statistics.median(totals)) if len(totals) % 2 else 0
    return {"config": config, "tasks": b, "trajectories": n, "horizon": family.horizon,
            "env_steps_per_meta_iteration": b * n * family.horizon * (algorithm.inner_steps + 1),
            "env_steps_per_s_simulation": sim_rate, "env_steps_per_s_sampler": sampler_rate,
            "s_per_meta_iteration": statistics.median(totals) if totals else None, "split_s": splits[best] if splits else {}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", nargs="+", default=["maml-rl-nav2d", "maml-rl-cheetah-vel"])
    parser.add_argument("--rounds", type=int, default=3, help="meta-iterations timed (0: only the env-step rates)")
    parser.add_argument("--sim-steps", type=int, default=None, help="steps of the env-step rates (default: the horizon)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [measure(c, args.rounds, args.sim_steps) for c in args.config]
    if args.json:
        print(json.dumps(rows, indent=1))
        return
    for r in rows:
        split = ", ".join(f"{k} {v:.2f} s ({100 * v / r['s_per_meta_iteration']:.0f}%)" for k, v in r["split_s"].items())
        timed = "" if r["s_per_meta_iteration"] is None else f"; {r['s_per_meta_iteration']:.2f} s / meta-iteration ({split})"
        print(f"{r['config']}: {r['tasks']} tasks x {r['trajectories']} trajectories x {r['horizon']} steps; "
              f"env steps/s: simulation {r['env_steps_per_s_simulation']:.0f}, sampler {r['env_steps_per_s_sampler']:.0f}{timed}")


if __name__ == "__main__":
    main()
