"""``learnfast``: train, evaluate and list meta-learners from the command line."""
from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from pathlib import Path
from typing import Any

from .data.omniglot import OmniglotDataError
from .train.checkpoint import CheckpointError
from .train.config import ConfigError, RunConfig, list_configs, load_config, tomllib

# flag -> (section, key, type)
TRAIN_FLAGS = {
    "dataset": ("data", "dataset", str), "split": ("data", "split", str), "backbone": ("model", "backbone", str),
    "ways": ("train", "ways", int), "shots": ("train", "shots", int), "queries": ("train", "queries", int),
    "meta_batch": ("train", "meta_batch", int), "iterations": ("train", "iterations", int), "lr": ("train", "lr", float),
    "val_every": ("train", "val_every", int), "val_episodes": ("train", "val_episodes", int),
    "checkpoint_every": ("train", "checkpoint_every", int), "seed": ("train", "seed", int),
    "precision": ("train", "precision", str),
}


FLAG_HELP = {"precision": "train.precision: fp32 (default) or bf16 (autocast of the training step; evaluation stays fp32)"}


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # a bare string


def _config_from_args(args: argparse.Namespace) -> RunConfig:
    cfg = load_config(args.config) if args.config else RunConfig(name=args.algorithm or "run")
    if args.algorithm:
        cfg.algorithm = {"name": args.algorithm} if cfg.algorithm.get("name") != args.algorithm else cfg.algorithm
    for flag, (section, key, _) in TRAIN_FLAGS.items():
        value = getattr(args, flag)
        if value is not None:
            cfg.override(section, key, value)
    for item in args.set:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise ConfigError(f"--set {item!r}: write SECTION.KEY=VALUE, e.g. --set algorithm.inner_lr=0.4")
        path, value = item.split("=", 1)
        section, key = path.split(".", 1)
        if section not in ("algorithm", "data", "model", "train", "pretrain", "eval"):
            raise ConfigError(f"--set {item!r}: unknown section {section!r}; use algorithm, data, model, train, pretrain or eval")
        cfg.override(section, key, _parse_value(value))
    return cfg


def _setup_process(args: argparse.Namespace) -> None:
    """Torch threads from ``--threads``, and freed host memory kept for reuse (see ``host_memory``).

    A command-line run owns its process, so keeping freed memory is safe here: it spares every
    large CPU activation its page faults (~30% of a Conv4 episode's forward and backward).
    """
    import torch

    from .host_memory import keep_freed_memory

    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    keep_freed_memory()


def cmd_train(args: argparse.Namespace) -> int:
    from .train.build import build_source
    from .train.evaluate import evaluate
    from .train.trainer import Trainer

    _setup_process(args)
    cfg = _config_from_args(args)
    out = Path(args.out or f"runs/{cfg.name}")
    command = "learnfast " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    trainer = Trainer(cfg, out, data_root=args.data_root, progress=not args.no_progress, command=command)
    summary = trainer.fit(resume=args.resume)
    print(json.dumps({"out": str(out), **summary}))
    if args.test_episodes:
        from .train.checkpoint import load_checkpoint

        trainer.algorithm.load_state_dict(load_checkpoint(out / "best.safetensors").weights)
        e = cfg.eval
        result = evaluate(trainer.algorithm, build_source(cfg, "test", e.ways, e.shots, e.queries, args.data_root),
                          trainer.metric, args.test_episodes, seed=e.seed, progress=not args.no_progress)
        print(f"test ({cfg.data.dataset}/{cfg.data.split}, {e.ways}-way {e.shots}-shot, best checkpoint): {result}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .train.build import build_algorithm, build_source, metric_name
    from .train.checkpoint import load_checkpoint
    from .train.evaluate import evaluate
    from .train.trainer import VAL_SEED

    if args.part == "val" and (args.lake_runs or args.alphabet_distances):
        raise ConfigError("--lake-runs and --alphabet-distances score test alphabets; run them without --part val")
    _setup_process(args)
    ckpt = load_checkpoint(args.checkpoint)
    cfg = RunConfig.from_dict(ckpt.meta["config"], source=str(args.checkpoint))
    for flag in ("ways", "shots", "queries"):
        if getattr(args, flag) is not None:
            cfg.override("eval", flag, getattr(args, flag))
    if args.split:
        cfg.override("data", "split", args.split)
    algorithm = build_algorithm(cfg)
    algorithm.load_state_dict(ckpt.weights)
    e = cfg.eval
    episodes = args.episodes or e.episodes
    default_seed = VAL_SEED if args.part == "val" else e.seed  # val: the episodes (and more) training validated on
    seed = default_seed if args.seed is None else args.seed
    metric = metric_name(cfg)
    source = build_source(cfg, args.part, e.ways, e.shots, e.queries, args.data_root)
    result = evaluate(algorithm, source, metric, episodes, seed=seed, inner_steps=args.inner_steps, progress=not args.json)
    report = {
        "algorithm": cfg.algorithm["name"], "dataset": cfg.data.dataset,
        "split": cfg.data.split if cfg.data.dataset == "omniglot" else None,
        "ways": e.ways if metric == "accuracy" else None, "shots": e.shots, "queries": e.queries,
        "part": args.part, "episodes": result.episodes, "seed": seed, "metric": metric, "mean": result.mean, "ci95": result.ci95,
        "inner_steps": args.inner_steps, "checkpoint": str(args.checkpoint),
        "iteration": ckpt.meta.get("iteration"), "train_seconds": ckpt.meta.get("train_seconds"),
    }
    from .algorithms.mann import MANN, PAPER_INSTANCES, instance_accuracy

    if isinstance(algorithm, MANN):  # the paper's per-instance table (1st, 2nd, ... time a class is seen)
        wanted = [k for k in PAPER_INSTANCES if k <= e.shots]
        table = instance_accuracy(algorithm, source, episodes, seed, instances=wanted)
        report["instance_accuracy"] = {str(k): v for k, v in table.items()}
        if not args.json:
            print("per-instance accuracy: " + ", ".join(f"{k}: {100 * v:.1f}%" for k, v in table.items()))
    if args.lake_runs:
        from .data.lake_runs import evaluate_lake_runs

        lake = evaluate_lake_runs(algorithm, args.data_root)
        report["lake_runs"] = {"mean": lake.mean, "ci95": lake.ci95, "runs": lake.episodes}
        if cfg.data.split != "lake":
            print("warning: Lake's 20 runs come from the evaluation alphabets, which the vinyals split mixes into "
                  "training; train with --split lake for a clean number", file=sys.stderr)
        if not args.json:
            print(f"Lake's 20 within-alphabet one-shot runs: {lake}")
    if args.alphabet_distances:
        report["alphabet_distances"] = _alphabet_distances(algorithm, cfg, args.alphabet_distances, seed, args.data_root)
        if not args.json:
            d = report["alphabet_distances"]
            print(f"task-embedding distance: same alphabet {d['same']:.4f}, different alphabets {d['different']:.4f} (ratio {d['ratio']:.3f})")
    if not math.isfinite(result.mean):
        print(f"warning: the {metric} is not finite: adaptation diverged on some episode (try fewer --inner-steps)", file=sys.stderr)
    # strict JSON: a diverged (inf/nan) figure is reported as null
    report = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in report.items()}
    where = " (validation classes)" if args.part == "val" else ""
    print(json.dumps(report) if args.json else f"{cfg.name}{where}: {result}")
    return 0


def _alphabet_distances(algorithm, cfg: RunConfig, episodes: int, seed: int, data_root) -> dict:
    """Mean task-embedding distance of same- vs different-alphabet test episodes (``embed_task`` methods)."""
    import torch

    from .data.alphabets import alphabet_distances, alphabet_samplers
    from .data.omniglot import omniglot_split
    from .episodes import EpisodeSpec
    from .train.build import to_float_image

    if not hasattr(algorithm, "embed_task"):
        raise ValueError(f"{cfg.algorithm['name']} has no task embedding (embed_task); --alphabet-distances needs e.g. tadam")
    if cfg.data.dataset != "omniglot":
        raise ValueError(f"--alphabet-distances needs Omniglot episodes, not {cfg.data.dataset!r}")
    split = omniglot_split(cfg.data.split, "test", data_root)
    samplers = alphabet_samplers(split, EpisodeSpec(cfg.eval.ways, cfg.eval.shots, 1), transform=to_float_image)
    algorithm.eval()
    d = alphabet_distances(algorithm.embed_task, samplers, episodes, torch.Generator().manual_seed(seed))
    return {"same": d.same, "different": d.different, "ratio": d.ratio, "same_pairs": d.same_pairs,
            "different_pairs": d.different_pairs, "alphabets": len(samplers), "episodes_per_alphabet": episodes}


def cmd_list(args: argparse.Namespace) -> int:
    from .algorithms import ALGORITHMS
    from .models import BACKBONES
    from .train.build import DATASETS

    listing = {
        "algorithms": {name: (cls.__doc__ or "").strip().splitlines()[0] for name, cls in ALGORITHMS.items()},
        "datasets": DATASETS, "backbones": BACKBONES, "configs": list_configs(),
    }
    if args.json:
        print(json.dumps(listing))
        return 0
    for section, items in listing.items():
        print(f"{section}:")
        for item in items:
            print(f"  {item:24s} {items[item]}" if isinstance(items, dict) else f"  {item}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    _setup_process(args)
    return run_demo(out=Path(args.out), data_root=args.data_root, zoo=Path(args.zoo))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="learnfast", description="Meta-learning for PyTorch: train, evaluate and list few-shot learners.")
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="meta-train from a config (name or TOML path) and/or flags",
                           description="Meta-train an algorithm. Flags override the config; `--set SECTION.KEY=VALUE` sets anything else.")
    train.add_argument("config", nargs="?", help=f"config name or TOML path (named: {', '.join(list_configs())})")
    train.add_argument("--algorithm", help="algorithm name (see `learnfast list`)")
    for flag, (section, key, typ) in TRAIN_FLAGS.items():
        train.add_argument("--" + flag.replace("_", "-"), dest=flag, type=typ, help=FLAG_HELP.get(flag, f"{section}.{key}"))
    train.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override any config value, e.g. algorithm.inner_lr=0.4")
    train.add_argument("--out", help="run folder (default runs/CONFIG_NAME)")
    train.add_argument("--resume", action="store_true", help="continue from OUT/last.safetensors (same config; --iterations and the [train] lr schedule may change)")
    train.add_argument("--test-episodes", type=int, default=0, help="after training, evaluate the best checkpoint on this many test episodes")
    train.add_argument("--data-root", help="folder holding omniglot/ (default $LEARNFAST_DATA)")
    train.add_argument("--threads", type=int, help="torch CPU threads")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(func=cmd_train)

    ev = sub.add_parser("eval", help="evaluate a checkpoint on fixed, seeded test episodes (mean ± 95%% CI)")
    ev.add_argument("checkpoint", help="a .safetensors checkpoint (runs/NAME/best.safetensors, zoo/...)")
    ev.add_argument("--episodes", type=int, help="number of episodes (default: the config's, 600 or 1000)")
    ev.add_argument("--seed", type=int, help="seed of the fixed episode set (default: the config's, 0; with --part val, "
                    "the seed of training's validation episodes)")
    ev.add_argument("--part", choices=("test", "val"), default="test",
                    help="which classes to draw episodes from: test (default), or val to choose among checkpoints "
                    "without touching the test classes")
    ev.add_argument("--ways", type=int, help="override eval ways")
    ev.add_argument("--shots", type=int, help="override eval shots")
    ev.add_argument("--queries", type=int, help="override eval queries per class")
    ev.add_argument("--split", help="override the class split (omniglot: vinyals | lake)")
    ev.add_argument("--lake-runs", action="store_true", help="also score Lake's 20 within-alphabet 20-way one-shot runs (all_runs.zip)")
    ev.add_argument("--alphabet-distances", type=int, metavar="EPISODES", help="also compare task embeddings (embed_task, e.g. tadam) of "
                    "EPISODES test episodes per alphabet: mean distance within vs across alphabets")
    ev.add_argument("--inner-steps", type=int, help="test-time adaptation steps (gradient-based methods)")
    ev.add_argument("--data-root", help="folder holding omniglot/ (default $LEARNFAST_DATA)")
    ev.add_argument("--threads", type=int, help="torch CPU threads")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.set_defaults(func=cmd_eval)

    ls = sub.add_parser("list", help="list algorithms, datasets, backbones and named configs")
    ls.add_argument("--json", action="store_true", help="print one JSON object")
    ls.set_defaults(func=cmd_list)

    demo = sub.add_parser("demo", help="the main job: sinusoid MAML vs. pretrained table + plot, and the zoo's Omniglot ProtoNet")
    demo.add_argument("--out", default="demo_out", help="folder for the plot and results")
    demo.add_argument("--zoo", default="zoo", help="folder of shipped checkpoints")
    demo.add_argument("--data-root", help="folder holding omniglot/ (default $LEARNFAST_DATA)")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ConfigError, CheckpointError, OmniglotDataError, FileNotFoundError, ValueError, FloatingPointError) as err:
        print(f"learnfast {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; resume with the same command plus --resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
