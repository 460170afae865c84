"""The MAML paper's meta-RL figure: average return against the number of gradient steps, one line per method; the
figures after each number of steps as ``EvalResult``s and as a JSON-ready table."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from torch import Tensor

from ..protocol import EvalResult


def step_results(curves: dict[str, dict[str, Tensor]], metric: str) -> dict[str, list[EvalResult]]:
    """Each method's ``metric`` after 0, 1, ... steps as ``EvalResult``s over tasks, from ``adaptation_curves`` outputs
    ``{method: {metric: (B, steps + 1)}}``; methods without that metric are left out."""
    return {name: [EvalResult(metric, c[metric][:, k].double()) for k in range(c[metric].shape[1])]
            for name, c in curves.items() if metric in c}


def by_steps(curves: dict[str, Sequence[EvalResult]]) -> dict[str, dict[str, dict[str, float]]]:
    """``{method: {"k": {"mean", "ci95"}}}``: each method's figure after ``k`` steps, for JSON reports."""
    return {name: {str(k): {"mean": r.mean, "ci95": r.ci95} for k, r in enumerate(results)} for name, results in curves.items()}


def plot_adaptation(curves: dict[str, Sequence[EvalResult]], path: str | Path, title: str) -> Path:
    """Writes a PNG of each method's mean return (± 95% CI band) after 0, 1, 2, ... gradient steps; returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.6))
    for name, results in curves.items():
        steps = list(range(len(results)))
        means = [r.mean for r in results]
        cis = [r.ci95 for r in results]
        ax.plot(steps, means, marker="o", label=name)
        ax.fill_between(steps, [m - c for m, c in zip(means, cis)], [m + c for m, c in zip(means, cis)], alpha=0.2)
    ax.set_xlabel("number of gradient steps")
    ax.set_ylabel("average return")
    ax.set_xticks(range(max(len(r) for r in curves.values())))
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
