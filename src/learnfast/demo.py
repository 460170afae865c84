"""``learnfast demo``: the main job, a few minutes on 2 CPU cores.

1. Meta-trains a fresh MAML on sinusoid regression for a short schedule (proof that training works here).
2. Evaluates the zoo's fully trained sinusoid checkpoints, MAML and the pretrained baseline, on 600
   fixed test tasks with K=5 after 1, 5 and 10 steps, next to the MAML paper's numbers, and plots
   the adaptation to one task.
3. Evaluates the zoo's Prototypical Network on Omniglot when the data is present.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from .data.omniglot import OmniglotDataError
from .train.build import build_algorithm, build_source, metric_name
from .train.checkpoint import CheckpointError, load_checkpoint
from .train.config import RunConfig, load_config
from .train.evaluate import episode_generator, evaluate
from .train.trainer import Trainer

PAPER_SINUSOID = {"maml": {1: 0.67, 5: 0.38, 10: 0.35}, "pretrained": {1: 2.41, 5: 2.23, 10: 2.19}}
STEPS = (1, 5, 10)
FRESH_ITERATIONS = 2000
OMNIGLOT_EPISODES = 300


def _load(path: Path):
    ckpt = load_checkpoint(path)
    cfg = RunConfig.from_dict(ckpt.meta["config"], source=str(path))
    algorithm = build_algorithm(cfg)
    algorithm.load_state_dict(ckpt.weights)
    return cfg, algorithm.eval()


def _sinusoid_table(models: dict, source) -> dict[str, dict[int, tuple[float, float]]]:
    table = {}
    for name, algorithm in models.items():
        table[name] = {}
        for steps in STEPS:
            r = evaluate(algorithm, source, "mse", episodes=600, seed=0, batch_size=100, inner_steps=steps)
            table[name][steps] = (r.mean, r.ci95)
    return table


def _plot(models: dict, source, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    task = source.sample(1, episode_generator(0, 0))
    grid = torch.linspace(-5, 5, 200).view(1, 200, 1)
    dense = task._replace(query_x=grid, query_y=torch.zeros_like(grid))  # same support set, predictions on a grid
    fig, ax = plt.subplots(figsize=(7, 4))
    full = torch.cat([task.query_x, task.support_x], 1)[0, :, 0]  # 105 points on the true curve
    truth = torch.cat([task.query_y, task.support_y], 1)[0, :, 0]
    order = full.argsort()
    ax.plot(full[order], truth[order], color="black", lw=2, label="true task")
    ax.scatter(task.support_x[0, :, 0], task.support_y[0, :, 0], color="red", zorder=5, label="K=5 support points")
    styles = {("maml", 0): ":", ("maml", 1): "--", ("maml", 10): "-", ("pretrained", 10): "-."}
    with torch.no_grad():
        for (name, steps), style in styles.items():
            pred = models[name](dense, inner_steps=steps)[0, :, 0]
            ax.plot(grid[0, :, 0], pred, style, label=f"{name}, {steps} step{'s' if steps != 1 else ''}")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title("Adapting to a new sinusoid from 5 points")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_demo(out: Path, data_root: str | None, zoo: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    results: dict = {}

    print(f"[1/3] meta-training a fresh MAML on sinusoids ({FRESH_ITERATIONS} iterations, the paper uses 70000)...")
    cfg = load_config("maml-sinusoid")
    cfg.train.iterations, cfg.train.val_every, cfg.train.checkpoint_every = FRESH_ITERATIONS, FRESH_ITERATIONS, FRESH_ITERATIONS
    trainer = Trainer(cfg, out / "fresh-maml-sinusoid", progress=True, command="learnfast demo")
    summary = trainer.fit()
    source = build_source(cfg, "test", 1, cfg.eval.shots, cfg.eval.queries)
    fresh = evaluate(trainer.algorithm, source, "mse", episodes=600, seed=0, batch_size=100)
    results["fresh_maml_sinusoid"] = {"iterations": FRESH_ITERATIONS, "train_seconds": summary["train_seconds"], "mse_10_steps": fresh.mean, "ci95": fresh.ci95}
    print(f"      fresh MAML after {summary['train_seconds']:.0f} s of training: test MSE (K=5, 10 steps) {fresh.mean:.3f} ± {fresh.ci95:.3f}")

    print("[2/3] zoo checkpoints on 600 fixed sinusoid test tasks, K=5 (MSE ± 95% CI; paper in brackets)")
    models = {name: _load(zoo / f"{name}-sinusoid.safetensors")[1] for name in ("maml", "pretrained")}
    table = _sinusoid_table(models, source)
    print(f"      {'model':12s}" + "".join(f"{f'{s} step' + ('s' if s > 1 else ''):>22s}" for s in STEPS))
    for name, row in table.items():
        cells = "".join(f"{f'{m:.3f} ± {c:.3f} [{PAPER_SINUSOID[name][s]:.2f}]':>22s}" for s, (m, c) in row.items())
        print(f"      {name:12s}{cells}")
    results["sinusoid"] = {name: {str(s): {"mse": m, "ci95": c} for s, (m, c) in row.items()} for name, row in table.items()}
    _plot(models, source, out / "sinusoid_adaptation.png")
    print(f"      adaptation plot: {out / 'sinusoid_adaptation.png'}")

    print(f"[3/3] zoo Prototypical Network on Omniglot (Vinyals split, {OMNIGLOT_EPISODES} fixed test episodes; docs/results.md uses 1000)")
    ckpt_path = zoo / "protonet-omniglot.safetensors"
    try:
        cfg, protonet = _load(ckpt_path)
        for ways in (5, 20):
            cfg.eval.ways = ways
            test = build_source(cfg, "test", ways, cfg.eval.shots, cfg.eval.queries, data_root)
            r = evaluate(protonet, test, metric_name(cfg), OMNIGLOT_EPISODES, seed=0, progress=True)
            results[f"protonet_omniglot_{ways}w1s"] = {"mean": r.mean, "ci95": r.ci95, "episodes": r.episodes}
            print(f"      {ways}-way 1-shot: {r}")
    except (OmniglotDataError, CheckpointError) as err:
        print(f"      skipped: {err}")
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print(f"results: {out / 'results.json'}")
    return 0
