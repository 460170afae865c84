"""``learnfast``: train, evaluate and list meta-learners from the command line."""
from __future__ import annotations

import argparse
import json
import math
import shlex
import signal
import sys
from pathlib import Path
from typing import Any

from .data.omniglot import OmniglotDataError
from .train.checkpoint import CheckpointError
from .train.config import ConfigError, RunConfig, list_configs, load_config, tomllib
from .train.arguments import at_least
from .train.distributed import DEVICES, close_ranks
from .train.run_folder import RunFolderError

# flag -> (section, key, type)
TRAIN_FLAGS = {
    "dataset": ("data", "dataset", str), "split": ("data", "split", str), "backbone": ("model", "backbone", str),
    "ways": ("train", "ways", int), "shots": ("train", "shots", int), "queries": ("train", "queries", int),
    "meta_batch": ("train", "meta_batch", int), "iterations": ("train", "iterations", int), "lr": ("train", "lr", float),
    "val_every": ("train", "val_every", int), "val_episodes": ("train", "val_episodes", int),
    "checkpoint_every": ("train", "checkpoint_every", int), "seed": ("train", "seed", int),
    "precision": ("train", "precision", str),
}


DATA_ROOT_HELP = ("data folder holding omniglot/ etc.; default: $LEARNFAST_DATA, else the first of ./data and "
                  "../shared/data that holds the dataset")
DEVICE_HELP = "cpu, cuda, or auto (CUDA when there is one; default)"
OUT_OF_SCOPE = "out-of-scope"  # predict's label for a query rejected by --reject-below
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
    if getattr(args, "data", None):  # train --data PATH: the user's own classes
        cfg.override("data", "dataset", "custom")
        cfg.override("data", "split", "classes")
        cfg.override("data", "path", args.data)
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


def printable(text: Any) -> str:
    """``text`` with control, format (bidi) and other non-printing characters escaped, for the terminal;
    names read from a checkpoint or config are untrusted."""
    return "".join(c if c.isprintable() or c in "\n\t" else c.encode("unicode_escape").decode("ascii") for c in str(text))


def cmd_train(args: argparse.Namespace) -> int:
    from .train.restore import evaluation_seed, evaluation_source
    from .train.checkpoint import load_checkpoint, restore_weights
    from .train.evaluate import evaluate
    from .train.trainer import Trainer

    _setup_process(args)
    cfg = _config_from_args(args)
    out = Path(args.out or f"runs/{cfg.name}")
    command = "learnfast " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    trainer = Trainer(cfg, out, data_root=args.data_root, progress=not args.no_progress, command=command, device=args.device)
    summary = trainer.fit(resume=args.resume, overwrite=args.overwrite)
    for warning in summary["warnings"]:
        print(f"learnfast train: warning: {warning}", file=sys.stderr)
    report: dict[str, Any] = {"out": str(out), **summary}
    if args.test_episodes:
        best = out / "best.safetensors"
        restore_weights(trainer.algorithm, load_checkpoint(best).weights, best)
        result = evaluate(trainer.algorithm, evaluation_source(cfg, "test", args.data_root), trainer.metric,
                          args.test_episodes, seed=evaluation_seed(cfg, "test"), progress=not args.no_progress,
                          device=trainer.device, ranks=trainer.ranks)
        report["test"] = {"mean": result.mean, "ci95": result.ci95, "episodes": result.episodes}
    if not trainer.ranks.main:  # under torchrun, rank 0 reports
        return 0
    if args.json:
        print(json.dumps(_strict(report)))
        return 0
    metric = trainer.metric
    best_at = "the pretraining phase's end" if summary["best_iteration"] is None else f"iteration {summary['best_iteration']}"
    seconds = summary["train_seconds"]
    took = f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
    print(f"{printable(cfg.name)}: {summary['iteration']} iterations in {took}; "
          f"best validation {metric} {_score(metric, summary['best_score'])} at {best_at}")
    print(f"  best: {out / 'best.safetensors'}\n  last: {out / 'last.safetensors'} (continue with --resume)\n"
          f"  log:  {out / 'metrics.jsonl'}")
    if args.test_episodes:
        e = cfg.eval
        print(f"test ({cfg.data.dataset}/{cfg.data.split}, {e.ways}-way {e.shots}-shot, best checkpoint): {result}")
    return 0


def _score(metric: str, value: float) -> str:
    return f"{100 * value:.2f} %" if metric == "accuracy" else f"{value:.4g}"


def _strict(report: dict[str, Any]) -> dict[str, Any]:
    """Strict JSON: a diverged (inf/nan) figure is reported as null."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in report.items()}


def cmd_eval(args: argparse.Namespace) -> int:
    from .train.build import metric_name
    from .train.distributed import init_ranks, resolve_device
    from .train.evaluate import evaluate
    from .train.restore import evaluation_seed, evaluation_source, restore

    if args.part == "val" and (args.lake_runs or args.alphabet_distances):
        raise ConfigError("--lake-runs and --alphabet-distances score test alphabets; run them without --part val")
    _setup_process(args)
    device = resolve_device(args.device)
    ranks = init_ranks(device)
    restored = restore(args.checkpoint, args.ways, args.shots, args.queries, args.split, device)
    algorithm, cfg, meta = restored.algorithm, restored.config, restored.meta
    e = cfg.eval
    episodes = args.episodes or e.episodes
    seed = evaluation_seed(cfg, args.part) if args.seed is None else args.seed
    metric = metric_name(cfg)
    source = evaluation_source(cfg, args.part, args.data_root)
    progress = not args.no_progress
    result = evaluate(algorithm, source, metric, episodes, seed=seed, inner_steps=args.inner_steps, progress=progress,
                      device=device, ranks=ranks)
    if not ranks.main:  # under torchrun, rank 0 reports
        return 0
    report = {
        "algorithm": cfg.algorithm["name"], "dataset": cfg.data.dataset,
        "split": cfg.data.split if cfg.data.dataset == "omniglot" else None,
        "ways": e.ways if metric == "accuracy" else None, "shots": e.shots, "queries": e.queries,
        "part": args.part, "episodes": result.episodes, "seed": seed, "metric": metric, "mean": result.mean, "ci95": result.ci95,
        "inner_steps": args.inner_steps, "checkpoint": str(args.checkpoint),
        "iteration": meta.get("iteration"), "train_seconds": meta.get("train_seconds"),
    }
    if args.inner_steps is not None and hasattr(algorithm, "decision_keys"):
        algorithm.eval_inner_steps = args.inner_steps  # MeLU's cold-start tables adapt with the same --inner-steps
    extra = algorithm.extra_report(source, episodes, seed)  # e.g. MANN's per-instance table
    report.update(extra)
    if not args.json:
        for key, value in extra.items():
            if key == "cold_start":  # MeLU's per-scenario tables
                from .recommend.report import format_report

                print(format_report(value, e.shots))
                continue
            percentages = isinstance(value, dict) and all(isinstance(v, float) for v in value.values())
            print(f"{key.replace('_', ' ')}: " + (", ".join(f"{k}: {100 * v:.1f}%" for k, v in value.items()) if percentages
                                                 else json.dumps(value) if isinstance(value, dict) else str(value)))
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
    if args.clinc150_full:
        from .train.clinc150_full import full_intent_accuracy, seen_intents

        full = full_intent_accuracy(algorithm, cfg, args.clinc150_full, root=args.data_root, device=device)
        full["seen_intents"] = seen_intents(cfg, args.data_root)
        report["clinc150_full"] = full
        print(f"warning: this checkpoint meta-trained on {full['seen_intents']} of the 150 intents, every utterance of them "
              f"(official test ones too): the 150-way score is not a few-shot score", file=sys.stderr)
        if not args.json:
            print(f"CLINC150 150-way {full['shots']}-shot (official test set, {full['trials']} support draws): "
                  f"{100 * full['mean']:.2f} ± {100 * full['std']:.2f} % (std)")
    if args.out_of_scope:
        report["out_of_scope"] = _out_of_scope(algorithm, cfg, episodes, seed, args, device)
        if not args.json:
            from .train.out_of_scope import format_report

            print(format_report(report["out_of_scope"]))
    if not math.isfinite(result.mean):
        print(f"warning: the {metric} is not finite: adaptation diverged on some episode (try fewer --inner-steps)", file=sys.stderr)
    where = " (validation classes)" if args.part == "val" else ""
    print(json.dumps(_strict(report)) if args.json else f"{printable(cfg.name)}{where}: {result}")
    return 0


def _out_of_scope(algorithm, cfg: RunConfig, episodes: int, seed: int, args: argparse.Namespace, device) -> dict:
    """The rejection threshold chosen on the validation intents and oos_val, reported on the test episodes and oos_test."""
    from .train.out_of_scope import choose_threshold, confidences, out_of_scope_inputs, rejection_report
    from .train.restore import evaluation_seed, evaluation_source

    if args.part == "val":
        raise ConfigError("--out-of-scope chooses its threshold on the validation classes and reports the test classes; drop --part val")
    val = confidences(algorithm, evaluation_source(cfg, "val", args.data_root), out_of_scope_inputs(cfg, "val", args.data_root),
                      episodes, evaluation_seed(cfg, "val"), device)
    test = confidences(algorithm, evaluation_source(cfg, "test", args.data_root), out_of_scope_inputs(cfg, "test", args.data_root),
                       episodes, seed, device)
    return rejection_report(test, choose_threshold(val))


def cmd_predict(args: argparse.Namespace) -> int:
    from .api import predict
    from .train.predict import load_queries, load_support
    from .train.restore import restore

    _setup_process(args)
    restored = restore(args.checkpoint, device=args.device)
    algorithm, cfg = restored.algorithm, restored.config
    from .train.build import RECOMMENDATION

    if cfg.data.dataset in RECOMMENDATION:
        return _predict_ratings(args, algorithm, cfg)
    if args.user or args.top is not None:
        raise ConfigError("--user and --top belong to rating checkpoints (e.g. zoo/melu-ml100k.safetensors); drop them")
    if args.query is None:
        raise ConfigError("--query is required: the images or texts to label")
    support_x, support = load_support(cfg, args.support, invert=args.invert)
    queries = load_queries(cfg, args.query, invert=args.invert)
    if algorithm.needs_head and support.num_classes != cfg.train.ways:
        raise ConfigError(f"{cfg.algorithm['name']} has an output layer of {cfg.train.ways} classes; the support set has "
                          f"{support.num_classes} ({', '.join(support.class_names)}): give {cfg.train.ways} classes, or use "
                          f"a metric method (protonet, matching, ...) that takes any number")
    probabilities = predict(algorithm, support_x, support.labels, queries.inputs, inner_steps=args.inner_steps).softmax(-1)
    rows = []
    for name, p in zip(queries.names, probabilities.tolist()):
        best = max(range(len(p)), key=p.__getitem__)
        rejected = args.reject_below is not None and p[best] < args.reject_below
        rows.append({"query": name, "label": OUT_OF_SCOPE if rejected else support.class_names[best], "probability": p[best],
                     "probabilities": dict(zip(support.class_names, p))})
    table = [[r["query"], r["label"], r["probability"], *r["probabilities"].values()] for r in rows]
    _emit(args, rows, ["query", "label", "probability", *support.class_names], table,
          (f"{r['query']}\t{r['label']}\t{r['probability']:.3f}" for r in rows))
    return 0


def _predict_ratings(args: argparse.Namespace, algorithm, cfg: RunConfig) -> int:
    """``predict`` of a rating checkpoint: the new user's ranked list (``learnfast.train.recommend``)."""
    from .train.recommend import recommend

    if args.invert:
        raise ConfigError("--invert is for images; a rating checkpoint takes --support RATINGS.csv (item,rating)")
    bad = [item for item in args.user if "=" not in item]
    if bad:
        raise ConfigError(f"--user {bad[0]!r}: write KEY=VALUE, e.g. --user gender=F --user age=31")
    user = dict(item.split("=", 1) for item in args.user)
    rows = recommend(algorithm, cfg, args.support, args.query, user, args.top, args.inner_steps, args.data_root)
    header = ["rank", "item", "title", "predicted_rating"]
    _emit(args, rows, header, ([r[k] for k in header] for r in rows),
          (f"{r['rank']}\t{r['item']}\t{r['title']}\t{r['predicted_rating']:.2f}" for r in rows))
    return 0


def _emit(args: argparse.Namespace, rows: list[dict], header: list[str], table, lines) -> None:
    """``predict``'s output: ``--csv OUT`` writes ``header`` and ``table``; ``--json`` prints ``rows``; else ``lines``."""
    import csv

    if args.csv:
        with open(args.csv, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(table)
    if args.json:
        print(json.dumps(rows))
    elif not args.csv:
        for line in lines:
            print(printable(line))


def cmd_ensemble(args: argparse.Namespace) -> int:
    from .selection.ensemble import compare_ensemble
    from .train.restore import evaluation_seed, evaluation_source, restore

    _setup_process(args)
    if len(args.checkpoints) < 2:
        raise ConfigError("an ensemble needs at least two checkpoints")
    restored = [restore(path, args.ways, args.shots, args.queries) for path in args.checkpoints]
    cfg = restored[0].config
    for path, r in zip(args.checkpoints, restored):
        if (r.config.data.dataset, r.config.data.split) != (cfg.data.dataset, cfg.data.split) or r.config.data.dataset != "omniglot":
            raise ConfigError(f"{path}: every member must be an Omniglot checkpoint of the same split as {args.checkpoints[0]} "
                              f"({cfg.data.dataset}/{cfg.data.split}); got {r.config.data.dataset}/{r.config.data.split}")
    names = [Path(path).stem for path in args.checkpoints]
    episodes = args.episodes or cfg.eval.episodes
    seed = evaluation_seed(cfg, "test") if args.seed is None else args.seed
    report = compare_ensemble(dict(zip(names, (r.algorithm for r in restored))), evaluation_source(cfg, "test", args.data_root),
                              episodes, seed=seed, progress=not args.no_progress)
    gain, ci = report.gain
    if args.json:
        print(json.dumps({"members": {n: {"mean": r.mean, "ci95": r.ci95} for n, r in report.members.items()},
                          "ensemble": {"mean": report.ensemble.mean, "ci95": report.ensemble.ci95},
                          "best_member": report.best_member, "gain": gain, "gain_ci95": ci, "episodes": episodes, "seed": seed,
                          "ways": cfg.eval.ways, "shots": cfg.eval.shots}))
        return 0
    for name, result in report.members.items():
        print(printable(f"{name}: {result}"))
    print(f"ensemble (mean of the members' probabilities): {report.ensemble}")
    print(printable(f"ensemble - best member ({report.best_member}): {100 * gain:+.2f} ± {100 * ci:.2f} points (paired, 95% CI)"))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .train.build import metric_name
    from .train.evaluate import evaluate
    from .train.report import episode_grid, write_report
    from .train.restore import evaluation_seed, evaluation_source, restore

    _setup_process(args)
    run = Path(args.run)
    out = Path(args.out) if args.out else run
    out.mkdir(parents=True, exist_ok=True)
    best = run / "best.safetensors"
    test, grid = None, None
    if best.is_file() and (args.test_episodes or args.episode_grid):
        restored = restore(best)
        source = evaluation_source(restored.config, "test", args.data_root)
        if args.test_episodes:
            result = evaluate(restored.algorithm, source, metric_name(restored.config), args.test_episodes,
                              seed=evaluation_seed(restored.config, "test"), progress=not args.no_progress)
            test = {"episodes": result.episodes, "mean": result.mean, "ci95": result.ci95}
        if args.episode_grid:
            grid = episode_grid(restored.algorithm, source, out, episodes=args.episode_grid)
    page = write_report(run, out, test=test, grid=grid)
    print(f"report: {page}")
    if args.tensorboard:
        from .train.report import write_tensorboard

        count = write_tensorboard(run, args.tensorboard)
        print(f"tensorboard: {count} scalars in {args.tensorboard} (tensorboard --logdir {args.tensorboard})")
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
    from .train.zoo import zoo_listing

    listing = {
        "algorithms": {name: (cls.__doc__ or "").strip().splitlines()[0] for name, cls in ALGORITHMS.items()},
        "datasets": DATASETS, "backbones": BACKBONES, "configs": list_configs(), "zoo": zoo_listing(Path(args.zoo)),
    }
    if args.json:
        print(json.dumps(listing))
        return 0
    for section, items in listing.items():
        print(f"{section}:" if section != "zoo" else f"zoo ({args.zoo}; evaluate with `learnfast eval {args.zoo}/FILE`):")
        width = max((len(item) for item in items), default=0)
        for item in items:
            print(printable(f"  {item:{width}s}  {items[item]}" if isinstance(items, dict) else f"  {item}"))
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
    train.add_argument("--data", metavar="PATH", help="meta-train on your own classes: a folder of class sub-folders of images, "
                       "a CSV/JSONL of texts (text, label), or an .npz (x, y); the classes are split into train / val / test "
                       "by a seeded rule, saved in the run (OUT/classes.json)")
    train.add_argument("--out", help="run folder (default runs/CONFIG_NAME)")
    train.add_argument("--resume", action="store_true", help="continue from OUT/last.safetensors (same config; --iterations and the [train] lr schedule may change)")
    train.add_argument("--overwrite", action="store_true", help="start over in an existing run folder, deleting its checkpoints and log "
                       "(without --resume or --overwrite, an existing run folder is an error)")
    train.add_argument("--test-episodes", type=at_least(0), default=0, help="after training, evaluate the best checkpoint on this many test episodes")
    train.add_argument("--data-root", help=DATA_ROOT_HELP)
    train.add_argument("--threads", type=at_least(1), help="torch CPU threads")
    train.add_argument("--device", choices=DEVICES, default="auto", help=DEVICE_HELP)
    train.add_argument("--no-progress", action="store_true", help="no progress bars")
    train.add_argument("--json", action="store_true", help="end with one JSON object (the last record, best score, paths) instead of the summary")
    train.set_defaults(func=cmd_train)

    ev = sub.add_parser("eval", help="evaluate a checkpoint on fixed, seeded test episodes (mean ± 95%% CI)")
    ev.add_argument("checkpoint", help="a .safetensors checkpoint (runs/NAME/best.safetensors, zoo/...)")
    ev.add_argument("--episodes", type=at_least(1), help="number of episodes (default: the config's, 600 or 1000)")
    ev.add_argument("--seed", type=at_least(0), help="seed of the fixed episode set (default: the config's, 0; with --part val, "
                    "the seed of training's validation episodes)")
    ev.add_argument("--part", choices=("test", "val"), default="test",
                    help="which classes to draw episodes from: test (default), or val to choose among checkpoints "
                    "without touching the test classes")
    ev.add_argument("--ways", type=at_least(1), help="override eval ways")
    ev.add_argument("--shots", type=at_least(1), help="override eval shots")
    ev.add_argument("--queries", type=at_least(1), help="override eval queries per class")
    ev.add_argument("--split", help="override the class split (omniglot: vinyals | lake)")
    ev.add_argument("--lake-runs", action="store_true", help="also score Lake's 20 within-alphabet 20-way one-shot runs (all_runs.zip)")
    ev.add_argument("--alphabet-distances", type=at_least(1), metavar="EPISODES", help="also compare task embeddings (embed_task, e.g. tadam) of "
                    "EPISODES test episodes per alphabet: mean distance within vs across alphabets")
    ev.add_argument("--inner-steps", type=at_least(0), help="test-time adaptation steps (gradient-based methods)")
    ev.add_argument("--clinc150-full", type=at_least(1), metavar="SHOTS", help="CLINC150: also the intent-detection papers' "
                    "setting, all 150 intents with SHOTS official training utterances each, scored on the 4500 official test ones (5 draws)")
    ev.add_argument("--out-of-scope", action="store_true", help="CLINC150: also add out-of-scope utterances to every episode, "
                    "report how often they get an intent, and a rejection threshold chosen on the validation intents (for predict --reject-below)")
    ev.add_argument("--data-root", help=DATA_ROOT_HELP)
    ev.add_argument("--threads", type=at_least(1), help="torch CPU threads")
    ev.add_argument("--device", choices=DEVICES, default="auto", help=DEVICE_HELP)
    ev.add_argument("--json", action="store_true", help="print one JSON object (progress stays on stderr)")
    ev.add_argument("--no-progress", action="store_true", help="no progress bar")
    ev.set_defaults(func=cmd_eval)

    pr = sub.add_parser("predict", help="adapt a checkpoint to your labelled examples and label new ones",
                        description="Adapt a checkpoint's learner to labelled support examples and label every query. "
                        "Images: --support a folder of class sub-folders, --query a folder of images. Texts: --support a "
                        ".csv/.jsonl with text and label, --query a text file (one per line) or a .csv/.jsonl with text. "
                        "Rating checkpoints (MeLU): --support a CSV item,rating of a new user, --query candidate item ids "
                        "(default: every unrated item); prints the items ranked by predicted rating.")
    pr.add_argument("checkpoint", help="a .safetensors checkpoint (zoo/... or runs/NAME/best.safetensors)")
    pr.add_argument("--support", required=True, help="labelled examples: a class-folder tree of images, a CSV/JSONL of texts, "
                    "an .npz (x, y), or a new user's ratings (CSV item,rating) for a rating checkpoint")
    pr.add_argument("--query", help="what to label: a folder of images, or a text / CSV / JSONL file (required); for a rating "
                    "checkpoint the candidate items, one id a line (default: every item the user has not rated)")
    pr.add_argument("--user", action="append", default=[], metavar="KEY=VALUE", help="rating checkpoints: the new user's "
                    "attributes (MovieLens: gender, age, occupation, zip; each optional)")
    pr.add_argument("--top", type=at_least(1), help="rating checkpoints: print the first TOP items only")
    pr.add_argument("--data-root", help=DATA_ROOT_HELP)
    pr.add_argument("--invert", action="store_true", help="images have dark strokes on a light page (Omniglot models expect ink = white)")
    pr.add_argument("--inner-steps", type=at_least(0), help="adaptation steps (gradient-based methods)")
    pr.add_argument("--reject-below", type=probability, metavar="P", help=f"label a query {OUT_OF_SCOPE!r} when its top class "
                    "probability is below P (e.g. the threshold `learnfast eval CKPT --out-of-scope` chose on validation)")
    pr.add_argument("--json", action="store_true", help="print one JSON list, an object per query")
    pr.add_argument("--csv", metavar="OUT", help="write a CSV (query, label, probability, one column per class)")
    pr.add_argument("--device", choices=DEVICES, default="auto", help=DEVICE_HELP)
    pr.add_argument("--threads", type=at_least(1), help="torch CPU threads")
    pr.set_defaults(func=cmd_predict)

    en = sub.add_parser("ensemble", help="model averaging: several checkpoints vote on the same fixed test episodes",
                        description="Adapt every checkpoint to each test episode, average their class probabilities, and "
                        "report each member, the ensemble and its paired gain over the best member.")
    en.add_argument("checkpoints", nargs="+", help="two or more Omniglot checkpoints of the same class split")
    en.add_argument("--ways", type=at_least(1), help="override eval ways")
    en.add_argument("--shots", type=at_least(1), help="override eval shots")
    en.add_argument("--queries", type=at_least(1), help="override eval queries per class")
    en.add_argument("--episodes", type=at_least(1), help="number of episodes (default: the first checkpoint's config)")
    en.add_argument("--seed", type=at_least(0), help="seed of the fixed episode set (default: the config's)")
    en.add_argument("--data-root", help=DATA_ROOT_HELP)
    en.add_argument("--threads", type=at_least(1), help="torch CPU threads")
    en.add_argument("--json", action="store_true", help="print one JSON object")
    en.add_argument("--no-progress", action="store_true", help="no progress bar")
    en.set_defaults(func=cmd_ensemble)

    rp = sub.add_parser("report", help="learning curves (PNG) and one HTML page of a run folder",
                        description="Plot a run's training loss, validation score and learning rate, and write report.html with "
                        "the plots, the config and the best checkpoint's figures (optionally a test score and a grid of test episodes).")
    rp.add_argument("run", help="a run folder (the --out of `learnfast train`)")
    rp.add_argument("--out", help="where to write the PNGs and report.html (default: the run folder)")
    rp.add_argument("--test-episodes", type=at_least(1), help="also score the best checkpoint on this many test episodes")
    rp.add_argument("--episode-grid", type=at_least(1), metavar="EPISODES", help="image data: a grid of this many test episodes")
    rp.add_argument("--tensorboard", metavar="DIR", help="also write the log's scalars (loss, lr, validation score) as TensorBoard "
                    "events in DIR (needs learnfast[tensorboard])")
    rp.add_argument("--data-root", help=DATA_ROOT_HELP)
    rp.add_argument("--threads", type=at_least(1), help="torch CPU threads")
    rp.add_argument("--no-progress", action="store_true", help="no progress bar")
    rp.set_defaults(func=cmd_report)

    ls = sub.add_parser("list", help="list algorithms, datasets, backbones, named configs and the zoo's checkpoints")
    ls.add_argument("--json", action="store_true", help="print one JSON object")
    ls.add_argument("--zoo", default="zoo", help="folder of shipped checkpoints (default ./zoo)")
    ls.set_defaults(func=cmd_list)

    demo = sub.add_parser("demo", help="the main job: sinusoid MAML vs. pretrained table + plot, and the zoo's Omniglot ProtoNet")
    demo.add_argument("--out", default="demo_out", help="folder for the plot and results")
    demo.add_argument("--zoo", default="zoo", help="folder of shipped checkpoints")
    demo.add_argument("--data-root", help=DATA_ROOT_HELP)
    demo.set_defaults(func=cmd_demo)

    from .selection.average_cli import add_average_parser
    from .selection.cli import add_select_parser

    add_select_parser(sub)
    add_average_parser(sub)
    return parser


def probability(text: str) -> float:
    """An argparse type: a float in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} must be a probability in [0, 1]")
    return value


def main(argv: list[str] | None = None) -> int:
    from .train.trainer import TrainingInterrupted

    args = build_parser().parse_args(argv)
    try:
        code = args.func(args)
        close_ranks()  # under torchrun: every rank finishes before any exits
        return code
    except (ConfigError, CheckpointError, OmniglotDataError, RunFolderError, FileNotFoundError, ValueError, ImportError,
            FloatingPointError) as err:
        print(printable(f"learnfast {args.command}: error: {err}"), file=sys.stderr)
        return 2
    except TrainingInterrupted as stop:
        print(printable(f"learnfast {args.command}: {stop}"), file=sys.stderr)
        return 128 + stop.signum
    except KeyboardInterrupt:
        print(f"learnfast {args.command}: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT


if __name__ == "__main__":
    sys.exit(main())
