"""Out-of-scope inputs: how often a learner confidently gives an input none of its classes covers one of them, and a rejection threshold.

Each episode of the fixed evaluation set (N-way K-shot, Q in-scope queries per class) also gets
out-of-scope queries (as many as its in-scope ones, at most the pool's size), drawn per episode
from a seeded generator; the learner adapts to the support set as usual and predicts every query
(the out-of-scope ones beside the others, so a transductive method sees them too). A query is
rejected when its top class probability is below a threshold ``tau``.

``choose_threshold`` picks ``tau`` on the validation classes and the validation out-of-scope
inputs (CLINC150's ``oos_val``): the value of a grid of 1001 in [0, 1] that maximises the mean of
the in-scope accuracy (a rejected in-scope query counts as wrong) and the out-of-scope rejection
rate; the test classes and ``oos_test`` then report it (``learnfast eval --out-of-scope``), and
``learnfast predict --reject-below TAU`` applies it.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..data.clinc150 import out_of_scope
from ..protocol import EvalResult, episode_generator
from ..tasks import Task
from .build import encode_texts
from .config import ConfigError, RunConfig

OOS_SEED = 7_777_777  # offset of the out-of-scope draws from the episode seed: their own stream
CONFIDENT = (0.5, 0.9)  # "confidently assigned": top probability at least these
GRID = 1001


@dataclass(frozen=True)
class Confidences:
    """Per episode: top probabilities of the in-scope queries ``(E, Qin)``, whether each was right ``(E, Qin)``,
    and top probabilities of the out-of-scope queries ``(E, Qoos)``."""

    in_scope: Tensor
    correct: Tensor
    out_of_scope: Tensor


def out_of_scope_inputs(cfg: RunConfig, part: str, root=None) -> Tensor:
    """CLINC150's out-of-scope utterances of ``part`` (``val``: oos_val, ``test``: oos_test), encoded for ``cfg``'s backbone."""
    if cfg.data.dataset != "clinc150":
        raise ConfigError(f"--out-of-scope scores CLINC150's out-of-scope utterances; this checkpoint was trained on {cfg.data.dataset!r}")
    return encode_texts(cfg, out_of_scope(root, part))


def confidences(algorithm: nn.Module, source, oos_inputs: Tensor, episodes: int, seed: int,
                device: torch.device | str = "cpu") -> Confidences:
    """The fixed episodes ``seed`` of ``source``, each with out-of-scope queries from ``oos_inputs (n, ...)``."""
    was_training = algorithm.training
    algorithm.eval()
    tops, rights, oos_tops = [], [], []
    try:
        with torch.no_grad():
            for i in range(episodes):
                task = source.sample(1, episode_generator(seed, i))
                q = task.query_x.shape[1]
                count = min(q, oos_inputs.shape[0])
                pick = torch.randperm(oos_inputs.shape[0], generator=episode_generator(seed + OOS_SEED, i))[:count]
                oos = oos_inputs[pick].to(task.query_x.dtype).unsqueeze(0)  # (1, count, ...)
                filler = torch.zeros(1, count, dtype=task.query_y.dtype)  # labels of the out-of-scope rows are never read
                batch = Task(task.support_x, task.support_y, torch.cat([task.query_x, oos], 1),
                             torch.cat([task.query_y, filler], 1)).to(device)
                probabilities = algorithm(batch).softmax(-1)[0].cpu()  # (q + count, ways)
                top, label = probabilities.max(-1)
                tops.append(top[:q])
                rights.append(label[:q] == task.query_y[0])
                oos_tops.append(top[q:])
    finally:
        algorithm.train(was_training)
    return Confidences(torch.stack(tops), torch.stack(rights), torch.stack(oos_tops))


def choose_threshold(c: Confidences) -> float:
    """The ``tau`` on a grid of [0, 1] maximising (in-scope accuracy with rejection + out-of-scope rejection rate) / 2."""
    grid = torch.linspace(0, 1, GRID)  # (T,)
    accuracy = ((c.in_scope.flatten()[None] >= grid[:, None]) & c.correct.flatten()[None]).float().mean(-1)
    rejection = (c.out_of_scope.flatten()[None] < grid[:, None]).float().mean(-1)
    return grid[int(torch.argmax(accuracy + rejection))].item()  # the lowest of equal scores


def rejection_report(c: Confidences, threshold: float) -> dict:
    """Per-episode means with 95% CIs (``protocol.EvalResult``) of what ``threshold`` does, and how often
    out-of-scope queries are confidently (top probability >= 0.5 / 0.9) given an in-scope class."""
    accepted = c.in_scope >= threshold

    def summary(values: Tensor) -> dict:
        result = EvalResult("accuracy", values.double())
        return {"mean": result.mean, "ci95": result.ci95}

    return {
        "threshold": threshold,
        "episodes": c.in_scope.shape[0],
        "out_of_scope_per_episode": c.out_of_scope.shape[1],
        **{f"oos_assigned_at_{p}": summary((c.out_of_scope >= p).float().mean(-1)) for p in CONFIDENT},
        "in_scope_accuracy_without_rejection": summary(c.correct.float().mean(-1)),
        "in_scope_accuracy_with_rejection": summary((c.correct & accepted).float().mean(-1)),
        "in_scope_rejected": summary((~accepted).float().mean(-1)),
        "oos_rejected": summary((c.out_of_scope < threshold).float().mean(-1)),
    }


def format_report(report: dict) -> str:
    """A few lines for the terminal."""
    pct = lambda key: f"{100 * report[key]['mean']:.2f} ± {100 * report[key]['ci95']:.2f} %"
    confident = ", ".join(f"p >= {p}: {pct(f'oos_assigned_at_{p}')}" for p in CONFIDENT)
    return (f"out-of-scope queries given an in-scope class ({report['out_of_scope_per_episode']} per episode) with {confident}\n"
            f"rejection below p = {report['threshold']:.3f} (chosen on validation): out-of-scope rejected {pct('oos_rejected')}, "
            f"in-scope rejected {pct('in_scope_rejected')}, in-scope accuracy {pct('in_scope_accuracy_with_rejection')} "
            f"(rejections count wrong; {pct('in_scope_accuracy_without_rejection')} without rejection)")
