"""``learnfast report RUN_DIR``: learning curves as PNG and one self-contained HTML page of a run.

Reads the run folder a ``learnfast train`` wrote (``metrics.jsonl``, ``best.safetensors`` /
``last.safetensors``): plots the training loss, the validation score with its 95% CI over the
validation episodes (where the log has it) and the outer learning rate; the HTML
page embeds the plots (base64), the config, the best checkpoint's figures and, for image data, a
grid of a few test episodes with the queries marked right or wrong.
"""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

import torch

from .checkpoint import load_checkpoint
from .config import RunConfig


def read_log(run: Path) -> list[dict[str, Any]]:
    path = run / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; pass the --out folder of a `learnfast train` run")
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            raise ValueError(f"{path}, line {number}: not JSON; the log is damaged") from None
    if not records:
        raise ValueError(f"{path} is empty: the run logged nothing yet")
    return records


def _plt():
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    return plt


def plot_curves(records: list[dict[str, Any]], metric: str, out: Path) -> list[Path]:
    """``loss.png``, ``validation.png`` and ``lr.png`` in ``out``; returns the paths written."""
    plt = _plt()
    meta = [r for r in records if r.get("phase", "meta") != "pretrain"]
    written = []
    for name, key, ylabel in (("loss", "loss", "training loss"), ("lr", "lr", "outer learning rate")):
        points = [(r["iteration"], r[key]) for r in meta if key in r]
        if not points:
            continue
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot(*zip(*points), lw=1)
        ax.set_xlabel("iteration")
        ax.set_ylabel(ylabel)
        if name == "loss" and all(v > 0 for _, v in points):
            ax.set_yscale("log")
        fig.tight_layout()
        fig.savefig(out / f"{name}.png", dpi=110)
        plt.close(fig)
        written.append(out / f"{name}.png")
    val = [(r["iteration"], r["val_" + metric], r.get("val_ci95")) for r in meta if r.get("val_" + metric) is not None]
    if val:
        x, y, half = zip(*val)
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot(x, y, marker="o", ms=3)
        if all(h is not None for h in half):  # the 95% CI over the validation episodes (logged since 2026-12-04)
            ax.fill_between(x, [v - h for v, h in zip(y, half)], [v + h for v, h in zip(y, half)], alpha=0.25)
        ax.set_xlabel("iteration")
        ax.set_ylabel(f"validation {metric}")
        fig.tight_layout()
        fig.savefig(out / "validation.png", dpi=110)
        plt.close(fig)
        written.append(out / "validation.png")
    return written


def episode_grid(algorithm, source, out: Path, episodes: int = 3, seed: int = 0) -> Path | None:
    """A PNG of a few test episodes: support images, then the queries with their predicted class, green right / red wrong."""
    from ..protocol import fixed_episodes

    plt = _plt()
    rows = []
    algorithm.eval()
    with torch.no_grad():
        for batch in fixed_episodes(source, episodes, seed, 1):
            if batch.support_x.dim() != 5:  # not images
                return None
            predicted = algorithm(batch).argmax(-1)[0]
            rows.append((batch, predicted))
    ways = rows[0][0].support_y.max().item() + 1
    queries = min(rows[0][0].query_x.shape[1], 2 * ways)
    cols = rows[0][0].support_x.shape[1] + queries
    fig, axes = plt.subplots(len(rows), cols, figsize=(cols * 0.8, len(rows) * 0.95), squeeze=False)
    for i, (batch, predicted) in enumerate(rows):
        images = list(batch.support_x[0]) + list(batch.query_x[0][:queries])
        for j, image in enumerate(images):
            ax = axes[i][j]
            ax.imshow(image[0].cpu().numpy(), cmap="gray")
            ax.set_xticks([])
            ax.set_yticks([])
            if j < batch.support_x.shape[1]:
                ax.set_title(f"class {batch.support_y[0, j].item()}", fontsize=6)
            else:
                q = j - batch.support_x.shape[1]
                right = predicted[q].item() == batch.query_y[0, q].item()
                ax.set_title(f"-> {predicted[q].item()}", fontsize=6, color="green" if right else "red")
                for spine in ax.spines.values():
                    spine.set_edgecolor("green" if right else "red")
                    spine.set_linewidth(2)
    fig.tight_layout()
    fig.savefig(out / "episodes.png", dpi=110)
    plt.close(fig)
    return out / "episodes.png"


TENSORBOARD_EXTRA = "pip install 'learnfast[tensorboard]'  (the tensorboard package)"


def write_tensorboard(run: str | Path, log_dir: str | Path) -> int:
    """The run's ``metrics.jsonl`` as TensorBoard scalars in ``log_dir`` (``train/loss``, ``train/lr``, ``val/accuracy``, ...,
    pretraining's under ``pretrain/``), stepped by iteration; returns the number of scalars written."""
    records = read_log(Path(run))
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as err:
        raise ImportError(f"--tensorboard needs the optional extra: {TENSORBOARD_EXTRA}") from err
    written = 0
    with SummaryWriter(log_dir=str(log_dir)) as writer:
        for record in records:
            phase = "pretrain" if record.get("phase") == "pretrain" else None
            for key, value in record.items():
                if key in ("iteration", "phase") or isinstance(value, bool) or not isinstance(value, (int, float)):
                    continue
                group = phase or ("val" if key.startswith("val_") else "train")
                writer.add_scalar(f"{group}/{key.removeprefix('val_')}", value, record["iteration"])
                written += 1
    return written


def write_report(run: str | Path, out: str | Path | None = None, test: dict[str, Any] | None = None,
                 grid: Path | None = None) -> Path:
    """Plots and ``report.html`` for the run folder ``run`` (written to ``out``, default the run folder)."""
    run = Path(run)
    out = Path(out) if out else run
    out.mkdir(parents=True, exist_ok=True)
    records = read_log(run)
    ckpt_path = run / "best.safetensors" if (run / "best.safetensors").is_file() else run / "last.safetensors"
    meta = load_checkpoint(ckpt_path).meta
    cfg = RunConfig.from_dict(meta["config"], source=str(ckpt_path))
    metric = meta.get("metric", "accuracy")
    plots = plot_curves(records, metric, out) + ([grid] if grid else [])
    figures = "".join(
        f'<figure><img alt="{p.stem}" src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}"><figcaption>{p.stem}</figcaption></figure>'
        for p in plots)
    facts = {"best validation": meta.get("val_score"), "best iteration": meta.get("iteration"),
             "train seconds": meta.get("train_seconds"), "command": meta.get("command"), **({"test": test} if test else {})}
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in facts.items())
    page = (f"<!doctype html><meta charset='utf-8'><title>{html.escape(cfg.name)}</title>"
            "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}figure{display:inline-block;margin:.5em}"
            "img{max-width:100%}th{text-align:left;padding-right:1em}pre{background:#f4f4f4;padding:1em}</style>"
            f"<h1>{html.escape(cfg.name)}</h1><table>{rows}</table>{figures}"
            f"<h2>Config</h2><pre>{html.escape(json.dumps(cfg.to_dict(), indent=2))}</pre>")
    (out / "report.html").write_text(page, encoding="utf-8")
    return out / "report.html"
