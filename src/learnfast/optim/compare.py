"""The learned optimizer against tuned hand-designed rules on held-out problems: table and loss curves.

Every rule runs the same held-out problems (same initial parameters, same mini-batches) for
``steps`` steps; each baseline's learning rate is tuned first on separate *training* problems
(:func:`learnfast.optim.baselines.tune_lr`). Reported per rule: mean final loss after each
checkpoint step with a 95% CI (1.96 std / sqrt(n), the evaluation protocol's), the fraction of
problems on which the learned rule ends lower than tuned Adam, and how many runs diverged (a
non-finite loss, or a final loss above the initial one).
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple, Sequence

import torch
from torch import Tensor

from ..inner import InnerOptimizer
from ..protocol import EvalResult
from ..tasks import Task
from .baselines import BASELINES, tune_lr
from .problems import Optimizee
from .unroll import run


class Curve(NamedTuple):
    """One rule's losses ``(steps + 1, problems)`` on the held-out problems; ``lr`` for tuned baselines."""

    name: str
    lr: float | None
    losses: Tensor


def compare(optimizee: Optimizee, learned: InnerOptimizer, learned_name: str, problems: Task, tuning_problems: Task,
            steps: int, horizon: int) -> list[Curve]:
    """The learned rule's curve, then each baseline's with its rate tuned on ``tuning_problems`` at ``horizon`` steps."""
    curves = [Curve(learned_name, None, run(optimizee, problems, learned, steps))]
    for name, rule in BASELINES.items():
        lr, _ = tune_lr(optimizee, tuning_problems, rule, horizon)
        curves.append(Curve(name, lr, run(optimizee, problems, rule(lr), steps)))
    return curves


def beats(curves: list[Curve], step: int, reference: str = "Adam") -> float:
    """Fraction of problems on which the first (learned) rule's loss at ``step`` is below ``reference``'s."""
    other = next(c for c in curves if c.name == reference)
    return (curves[0].losses[step] < other.losses[step]).double().mean().item()


def against_best(curves: list[Curve], step: int) -> dict[str, float | str]:
    """The first (learned) rule against the baseline with the lowest mean loss at ``step``, problem by problem:
    the mean of (baseline - learned) with its 95% CI (positive: the learned rule is lower) and the fraction of
    problems on which the learned rule is lower."""
    best = min(curves[1:], key=lambda c: c.losses[step].mean().item())
    difference = best.losses[step] - curves[0].losses[step]
    paired = EvalResult("final_loss", difference.double())
    return {"baseline": best.name, "mean_difference": paired.mean, "ci95": paired.ci95,
            "fraction_lower": (difference > 0).double().mean().item()}


def diverged(curve: Curve) -> int:
    """Runs whose final loss is not finite or above their initial loss."""
    final = curve.losses[-1]
    return int((~torch.isfinite(final) | (final > curve.losses[0])).sum())


def table(curves: list[Curve], checkpoints: Sequence[int]) -> str:
    """A plain-text table: rule, tuned rate, mean final loss ± 95% CI at each checkpoint, wins over Adam, divergences."""
    header = ["rule", "lr"] + [f"loss @ {s} steps" for s in checkpoints] + [f"< Adam @ {s}" for s in checkpoints] + ["diverged"]
    rows = []
    for curve in curves:
        cells = [curve.name, "learned" if curve.lr is None else f"{curve.lr:g}"]
        for s in checkpoints:
            result = EvalResult("final_loss", curve.losses[s].double())
            cells.append(f"{result.mean:.4g} ± {result.ci95:.2g}")
        for s in checkpoints:
            cells.append("" if curve.name == "Adam" else f"{100 * beats([curve, *curves], s):.0f}%")
        cells.append(f"{diverged(curve)}/{curve.losses.shape[1]}")
        rows.append(cells)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def plot(curves: list[Curve], path: str | Path, title: str) -> Path:
    """Writes a PNG of each rule's mean loss per step with its 95% band (log scale); returns the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for curve in curves:
        losses = curve.losses.double()
        steps = torch.arange(losses.shape[0])
        mean = losses.mean(1)
        band = 1.96 * losses.std(1) / losses.shape[1] ** 0.5
        label = curve.name if curve.lr is None else f"{curve.name} (lr {curve.lr:g})"
        ax.plot(steps, mean, lw=2.2 if curve.lr is None else 1.2, label=label)
        ax.fill_between(steps, (mean - band).clamp_min(1e-12), mean + band, alpha=0.2)
    ax.set(yscale="log", xlabel="optimizee step", ylabel="loss (mean, 95% band)", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
