"""The MAML paper's meta-RL figure from checkpoints: average return after 0..3 policy-gradient steps.

Every checkpoint (MAML, pretrained, oracle: ``learnfast train maml-rl-*``; Reptile: ``reptile-rl-*``)
adapts on the same fixed, seeded held-out tasks (``[eval] episodes`` and ``seed`` of the first
checkpoint's config, test part), beside a randomly initialised policy; prints mean ± 95% CI per
number of steps, each meta-learner's return after one step against the pretrained policy's after
the last, and the meta-learners' paired differences; writes the PNG and, with ``--json``, the
figures. With ``--cache DIR`` each method's per-task curves are kept in DIR, keyed by the
checkpoint's bytes, the tasks and the test steps, so the methods of one figure can be evaluated in
separate runs (at different times or in parallel) and a rerun computes only what is new.

    python benchmarks/rl_adaptation.py zoo/maml-rl-nav2d.safetensors zoo/maml-rl-nav2d-pretrained.safetensors \
        zoo/maml-rl-nav2d-oracle.safetensors --png docs/meta-rl-nav2d.png --threads 1
"""
from __future__ import annotations

import argparse
import hashlib
import itertools
import json
from pathlib import Path
from typing import Callable

import torch

from learnfast.algorithms.maml_rl import RANDOM_INIT_SEED
from learnfast.protocol import EvalResult, fixed_episodes
from learnfast.rl.plot import by_steps, plot_adaptation, step_results
from learnfast.train.restore import evaluation_seed, evaluation_source, restore

BASELINES = ("pretrained", "oracle", "random")


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
    parser.add_argument("--cache", default=None, help="folder of per-method curves reused across runs (see above)")
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
    settings = f"{family} {episodes} {seed} {args.steps}"
    curves = {r.algorithm.role(): cached(args.cache, f"{digest(path)} {r.algorithm.later_steps_scale} {settings}",
                                         lambda r=r: r.algorithm.adaptation_curves(tasks, args.steps))
              for path, r in zip(args.checkpoints, restored)}
    plain = next(((path, r.algorithm) for path, r in zip(args.checkpoints, restored) if not r.algorithm.oracle), None)
    if plain is not None:  # the random policy takes the shape and test steps of the first non-oracle checkpoint
        curves["random"] = cached(args.cache, f"random {digest(plain[0])} {plain[1].later_steps_scale} {settings}",
                                  lambda: random_curves(plain[1], tasks, args.steps))
    results = step_results(curves, "return")
    report = {"family": family, "tasks": episodes, "seed": seed, "checkpoints": args.checkpoints,
              "later_steps_scale": {r.algorithm.role(): r.algorithm.later_steps_scale for r in restored},
              "returns_by_steps": by_steps(results)}
    success = step_results(curves, "success")  # Meta-World: fraction of trajectories that reached the goal
    if success:
        report["success_by_steps"] = by_steps(success)
    learners = [name for name in results if name not in BASELINES]  # MAML, Reptile
    lines = []
    for name in learners if "pretrained" in results else []:
        m1, p3 = results[name][1], results["pretrained"][args.steps]
        beats = report[f"{name.lower()}_1_step_beats_pretrained_last_step"] = m1.mean - m1.ci95 > p3.mean + p3.ci95
        paired = paired_difference(curves[name], curves["pretrained"], 1, args.steps)  # same tasks
        report[f"{name.lower()}_1_step_minus_pretrained_last_step"] = paired
        lines.append(f"{name} after 1 step beats pretrained after {args.steps} with non-overlapping CIs: {beats}"
                     f" (paired difference on the same tasks: {paired['mean']:.2f} ± {paired['ci95']:.2f})")
    for a, b in itertools.combinations(learners, 2):
        diffs = [paired_difference(curves[b], curves[a], k, k) for k in range(args.steps + 1)]
        report[f"{b.lower()}_minus_{a.lower()}_by_steps"] = {str(k): d for k, d in enumerate(diffs)}
        lines.append(f"{b} minus {a}, paired on the same tasks, after 0..{args.steps} steps: "
                     + " / ".join(f"{d['mean']:.2f} ± {d['ci95']:.2f}" for d in diffs))
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
    print("\n".join(lines))


def paired_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], step_a: int, step_b: int) -> dict[str, float]:
    """Mean ± 95% CI over tasks of ``a``'s return after ``step_a`` steps minus ``b``'s after ``step_b``."""
    paired = EvalResult("return", (a["return"][:, step_a] - b["return"][:, step_b]).double())
    return {"mean": paired.mean, "ci95": paired.ci95}


def random_curves(algorithm, tasks, steps: int) -> dict[str, torch.Tensor]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_INIT_SEED)
        fresh = dict(algorithm.new_policy().named_parameters())
    return algorithm.adaptation_curves(tasks, steps, fresh)


def digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def cached(folder: str | None, key: str, compute: Callable[[], dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """``compute()``, or its earlier result stored in ``folder`` under ``key``."""
    if folder is None:
        return compute()
    from safetensors.torch import load_file, save_file

    path = Path(folder) / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.safetensors"
    if path.is_file():
        return load_file(path)
    result = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    save_file({k: v.detach().contiguous() for k, v in result.items()}, partial, metadata={"key": key})
    partial.replace(path)
    return result


if __name__ == "__main__":
    main()
