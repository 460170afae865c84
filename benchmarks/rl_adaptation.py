"""The MAML paper's meta-RL figure from checkpoints: average return after 0..3 policy-gradient steps.

Every checkpoint (MAML, pretrained, oracle; ``learnfast train maml-rl-*``) adapts on the same fixed,
seeded held-out tasks (``[eval] episodes`` and ``seed`` of the first checkpoint's config, test part),
beside a randomly initialised policy; prints mean ± 95% CI per number of steps, writes the PNG and,
with ``--json``, the figures.

    python benchmarks/rl_adaptation.py zoo/maml-rl-nav2d.safetensors zoo/maml-rl-nav2d-pretrained.safetensors \
        zoo/maml-rl-nav2d-oracle.safetensors --png docs/meta-rl-nav2d.png --threads 1
"""
from __future__ import annotations

import argparse
import json

import torch

from learnfast.algorithms.maml_rl import RANDOM_INIT_SEED
from learnfast.protocol import fixed_episodes
from learnfast.rl.plot import by_steps, plot_adaptation, step_results
from learnfast.train.restore import evaluation_seed, evaluation_source, restore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--episodes", type=int, default=None, help="held-out tasks (default: the config's [eval] episodes)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--later-steps-scale", type=float, default=None, help="step size of every step after the first, "
                        "times inner_lr, for every checkpoint (default: each checkpoint's config; the paper's evaluation: 0.5)")
    parser.add_argument("--png", default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    restored = [restore(path) for path in args.checkpoints]
    if args.later_steps_scale is not None:
        if not args.later_steps_scale > 0:
            raise SystemExit(f"rl_adaptation: --later-steps-scale must be > 0, got {args.later_steps_scale}")
        for r in restored:
            r.algorithm.later_steps_scale = args.later_steps_scale
    first = restored[0]
    family = first.config.data.dataset
    if any(r.config.data.dataset != family for r in restored):
        raise SystemExit("rl_adaptation: the checkpoints were trained on different task families; compare one family at a time")
    episodes = args.episodes or first.config.eval.episodes
    seed = evaluation_seed(first.config, "test")
    tasks = next(fixed_episodes(evaluation_source(first.config, "test"), episodes, seed, episodes))
    curves = {r.algorithm.role(): r.algorithm.adaptation_curves(tasks, args.steps) for r in restored}
    plain = next((r.algorithm for r in restored if not r.algorithm.oracle), None)  # the random policy takes its shape
    if plain is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_INIT_SEED)
            fresh = dict(plain.new_policy().named_parameters())
        curves["random"] = plain.adaptation_curves(tasks, args.steps, fresh)
    results = step_results(curves, "return")
    report = {"family": family, "tasks": episodes, "seed": seed, "checkpoints": args.checkpoints,
              "later_steps_scale": {r.algorithm.role(): r.algorithm.later_steps_scale for r in restored},
              "returns_by_steps": by_steps(results)}
    success = step_results(curves, "success")  # Meta-World: fraction of trajectories that reached the goal
    if success:
        report["success_by_steps"] = by_steps(success)
    if "pretrained" in results and "MAML" in results:
        m1, p3 = results["MAML"][1], results["pretrained"][args.steps]
        report["maml_1_step_beats_pretrained_last_step"] = m1.mean - m1.ci95 > p3.mean + p3.ci95
    if args.png:
        report["png"] = str(plot_adaptation(results, args.png, f"{family}: {episodes} held-out tasks"))
    if args.json:
        print(json.dumps(report, indent=1))
        return
    print(f"{family}: average return on {episodes} held-out tasks (seed {seed}), mean ± 95% CI")
    print("| method | " + " | ".join(f"{k} steps" for k in range(args.steps + 1)) + " |")
    print("|---|" + "---|" * (args.steps + 1))
    for name, rs in results.items():
        print(f"| {name} | " + " | ".join(f"{r.mean:.2f} ± {r.ci95:.2f}" for r in rs) + " |")
    for name, rs in success.items():
        print(f"| {name}, success rate | " + " | ".join(f"{100 * r.mean:.1f} ± {100 * r.ci95:.1f} %" for r in rs) + " |")
    if "maml_1_step_beats_pretrained_last_step" in report:
        print(f"MAML after 1 step beats pretrained after {args.steps} with non-overlapping CIs: {report['maml_1_step_beats_pretrained_last_step']}")


if __name__ == "__main__":
    main()
