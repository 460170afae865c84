"""``learnfast average RUN (--tail N | --soup)``: weight-average a run's snapshots into one checkpoint.

Reads ``RUN/snapshots/`` (a run trained with ``--set train.keep_every=K``), scores the newest
snapshot and the average on the run's fixed validation episodes (the ones training validated on,
whatever ``--ways`` / ``--shots`` / ``--queries`` say: those shape the test episodes only),
writes the average as a checkpoint (``--out``, default ``RUN/average-tailN.safetensors`` or
``RUN/soup.safetensors``) for ``learnfast eval``, and with ``--test-episodes`` scores both on the same
fixed test episodes with the paired difference and its 95% CI.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
from pathlib import Path

import torch

from ..protocol import EvalResult
from ..train.arguments import at_least
from ..train.build import metric_name
from ..train.checkpoint import Checkpoint, load_checkpoint, restore_weights, save_checkpoint
from ..train.evaluate import evaluate
from ..train.restore import VAL_SEED, evaluation_source, restore
from .averaging import greedy_soup, snapshot_paths, tail_average


def add_average_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``average`` command to the ``learnfast`` sub-parsers."""
    av = subparsers.add_parser("average", help="weight averaging: the mean of a run's last snapshots, or a greedy soup, as one checkpoint",
                               description="Average the weights of a run's snapshots (train with --set train.keep_every=N): the last "
                               "N (--tail N) or a greedy soup chosen on the validation episodes (--soup); write the checkpoint and "
                               "compare it with the newest snapshot.")
    av.add_argument("run", help="a run folder holding snapshots/ (the --out of `learnfast train ... --set train.keep_every=N`)")
    how = av.add_mutually_exclusive_group(required=True)
    how.add_argument("--tail", type=at_least(1), metavar="N", help="uniform average of the last N snapshots")
    how.add_argument("--soup", action="store_true", help="greedy soup: best validation snapshot first, each next kept where validation does not drop")
    av.add_argument("--out", help="checkpoint to write (default RUN/average-tailN.safetensors or RUN/soup.safetensors)")
    av.add_argument("--val-episodes", type=at_least(1), help="validation episodes (default: the run's train.val_episodes)")
    av.add_argument("--test-episodes", type=at_least(1), help="also score the newest snapshot and the average on this many fixed test episodes")
    av.add_argument("--ways", type=at_least(1), help="override eval ways of the test episodes (validation stays the run's)")
    av.add_argument("--shots", type=at_least(1), help="override eval shots of the test episodes")
    av.add_argument("--queries", type=at_least(1), help="override eval queries per class of the test episodes")
    av.add_argument("--data-root", help="data folder (default: $LEARNFAST_DATA, ./data or ../shared/data)")
    av.add_argument("--threads", type=at_least(1), help="torch CPU threads")
    av.add_argument("--json", action="store_true", help="print one JSON object")
    av.set_defaults(func=cmd_average)
    return av


def cmd_average(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    paths = snapshot_paths(args.run)
    if args.tail is not None and args.tail > len(paths):
        raise ValueError(f"--tail {args.tail}: {args.run} has {len(paths)} snapshots; choose 1..{len(paths)}")
    checkpoints = [load_checkpoint(p) for p in paths]
    states = [c.weights for c in checkpoints]
    if not args.test_episodes and any(v is not None for v in (args.ways, args.shots, args.queries)):
        raise ValueError("--ways / --shots / --queries shape the test episodes; add --test-episodes N")
    restored = restore(paths[-1])
    algorithm, cfg = restored.algorithm, restored.config
    metric = metric_name(cfg)
    sign = 1.0 if metric == "accuracy" else -1.0  # scores compared as higher-is-better
    val_source = evaluation_source(cfg, "val", args.data_root)
    val_episodes = args.val_episodes or cfg.train.val_episodes

    def validate(state) -> EvalResult:
        restore_weights(algorithm, state, paths[-1])
        return evaluate(algorithm, val_source, metric, val_episodes, seed=VAL_SEED)

    iterations = [int(p.stem) for p in paths]
    newest = validate(states[-1])
    if args.soup:
        soup = greedy_soup(states, lambda state: sign * validate(state).mean)
        state, kept, method = soup.state, sorted(soup.kept), "soup"
        default_out = Path(args.run) / "soup.safetensors"
    else:
        state, kept, method = tail_average(states, args.tail), list(range(len(states) - args.tail, len(states))), f"tail{args.tail}"
        default_out = Path(args.run) / f"average-tail{args.tail}.safetensors"
    averaged = validate(state)
    out = Path(args.out) if args.out else default_out
    meta = {**checkpoints[-1].meta, "averaged": {"method": method, "iterations": [iterations[i] for i in kept],
                                                  "val_score": averaged.mean, "val_episodes": val_episodes}}
    save_checkpoint(out, Checkpoint(weights=state, meta=meta))
    report = {"run": str(args.run), "method": method, "snapshots": iterations, "kept": [iterations[i] for i in kept],
              "metric": metric, "val_episodes": val_episodes, "val_ways": cfg.eval.ways, "val_shots": cfg.eval.shots,
              "val_newest": [newest.mean, newest.ci95], "val_average": [averaged.mean, averaged.ci95], "checkpoint": str(out)}
    if args.test_episodes:
        test_cfg = copy.deepcopy(cfg)
        for key in ("ways", "shots", "queries"):
            if getattr(args, key) is not None:
                test_cfg.override("eval", key, getattr(args, key))
        test_source = evaluation_source(test_cfg, "test", args.data_root)
        tests = {}
        for name, weights in (("newest", states[-1]), ("average", state)):
            restore_weights(algorithm, weights, paths[-1])
            tests[name] = evaluate(algorithm, test_source, metric, args.test_episodes, seed=cfg.eval.seed)
        diff = tests["average"].values - tests["newest"].values
        half = 1.96 * diff.std(unbiased=True).item() / math.sqrt(diff.numel()) if diff.numel() > 1 else float("nan")
        report.update(test_episodes=args.test_episodes, test_ways=test_cfg.eval.ways, test_shots=test_cfg.eval.shots, test_newest=[tests["newest"].mean, tests["newest"].ci95],
                      test_average=[tests["average"].mean, tests["average"].ci95], test_difference=[diff.mean().item(), half])
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{len(paths)} snapshots (iterations {iterations[0]}..{iterations[-1]}); {method} keeps iterations {report['kept']}")
    print(f"validation ({val_episodes} episodes, {cfg.eval.ways}-way {cfg.eval.shots}-shot): newest {newest}, average {averaged}")
    if args.test_episodes:
        d, h = report["test_difference"]
        print(f"test ({args.test_episodes} episodes, {test_cfg.eval.ways}-way {test_cfg.eval.shots}-shot): newest {tests['newest']}, average {tests['average']}, "
              f"average - newest {d:+.4f} ± {h:.4f} (paired, 95% CI)")
    print(f"wrote {out} (score it with `learnfast eval {out}`)")
    return 0
