"""Weight averaging of one run's checkpoints: the uniform average of its tail, and a greedy soup.

A run trained with ``[train] keep_every = K`` keeps its weights every ``K`` meta-iterations in
``RUN/snapshots/ITERATION.safetensors``. :func:`average_states` is their element-wise mean;
:func:`tail_average` the mean of the last ``n`` (stochastic weight averaging without a cyclic
schedule); :func:`greedy_soup` visits the snapshots from the best validation score down and keeps one
in the average only where the average's validation score does not drop (``>=``, as in Wortsman et
al.). The result is an ordinary checkpoint, scored by ``learnfast eval``.

State dicts: floating-point tensors (weights and float buffers) are averaged in float64, as the
first state plus the mean offset from it (so identical states average to themselves exactly), and
cast back; other tensors (BatchNorm's ``num_batches_tracked``) are taken from the newest snapshot.
BatchNorm running statistics, where a model keeps them, are averaged like weights, which only
approximates the statistics of the averaged weights (SWA re-estimates them with a pass over the
training data); learnfast's backbones normalise with per-task batch statistics and keep none.

References:
    Izmailov, Podoprikhin, Garipov, Vetrov & Wilson (2018). Averaging Weights Leads to Wider Optima
    and Better Generalization. UAI.
    Wortsman et al. (2022). Model soups: averaging weights of multiple fine-tuned models improves
    accuracy without increasing inference time. ICML.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch import Tensor

from ..train.trainer import SNAPSHOTS

State = dict[str, Tensor]


def snapshot_paths(run_dir: str | os.PathLike) -> list[Path]:
    """The run's snapshots, oldest first; ``FileNotFoundError`` naming the option when there are none."""
    folder = Path(run_dir) / SNAPSHOTS
    paths = sorted(folder.glob("*.safetensors"), key=lambda p: int(p.stem) if p.stem.isdigit() else -1)
    paths = [p for p in paths if p.stem.isdigit()]
    if not paths:
        raise FileNotFoundError(f"{folder} holds no snapshots; train the run with `--set train.keep_every=N` "
                                f"(its weights every N iterations) to average them")
    return paths


def average_states(states: Sequence[State]) -> State:
    """The element-wise mean of ``states`` (same keys and shapes); non-float tensors from the last one."""
    if not states:
        raise ValueError("nothing to average: pass at least one state dict")
    keys = set(states[0])
    for i, state in enumerate(states[1:], 1):
        if set(state) != keys:
            raise ValueError(f"state {i} has other keys than state 0 ({sorted(set(state) ^ keys)[:5]}); "
                             f"average checkpoints of one run only")
        bad = [k for k in keys if state[k].shape != states[0][k].shape]
        if bad:
            raise ValueError(f"state {i} differs in shape from state 0 at {sorted(bad)[:5]}; average checkpoints of one run only")
    out: State = {}
    for key, last in states[-1].items():
        if last.is_floating_point():
            base = states[0][key].double()  # base + mean offset: identical states average to themselves exactly
            out[key] = (base + torch.stack([state[key].double() - base for state in states]).mean(0)).to(last.dtype)
        else:
            out[key] = last.clone()
    return out


def tail_average(states: Sequence[State], n: int) -> State:
    """The mean of the last ``n`` states."""
    if not 1 <= n <= len(states):
        raise ValueError(f"--tail {n}: the run has {len(states)} snapshots; choose 1..{len(states)}")
    return average_states(states[-n:])


@dataclass(frozen=True)
class Soup:
    """A greedy soup: the averaged state, the indices of the states kept (in the order added), every validation score seen."""

    state: State
    kept: tuple[int, ...]
    scores: tuple[float, ...]  # each state's own score, by index
    soup_score: float  # the kept average's score
    trials: tuple[tuple[int, float, bool], ...]  # (index tried, the average's score with it, kept)


def greedy_soup(states: Sequence[State], score: Callable[[State], float]) -> Soup:
    """Wortsman et al.'s greedy soup: from the best-scoring state down, add a state to the average where
    ``score`` (higher is better, on validation data) of the new average is ``>=`` the current one.

    The soup's score never decreases as states are added, so it is at least the best single state's.
    """
    if not states:
        raise ValueError("nothing to average: pass at least one state dict")
    own = [score(state) for state in states]
    order = sorted(range(len(states)), key=lambda i: -own[i])  # stable: ties keep the older first
    kept, best = [order[0]], own[order[0]]
    trials = []
    for i in order[1:]:
        candidate = score(average_states([states[j] for j in sorted(kept + [i])]))
        accept = candidate >= best
        trials.append((i, candidate, accept))
        if accept:
            kept.append(i)
            best = candidate
    return Soup(average_states([states[j] for j in sorted(kept)]), tuple(kept), tuple(own), best, tuple(trials))
