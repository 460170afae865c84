"""The short path from a checkpoint to numbers: ``load``, ``evaluate`` and ``predict``.

>>> import learnfast as lf
>>> protonet = lf.load("zoo/protonet-omniglot.safetensors")    # from the repository root
>>> print(lf.evaluate(protonet, episodes=100))                 # needs the Omniglot zips
accuracy 98.96% ± 0.51% (95% CI, 100 episodes)
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor

from .algorithms import Algorithm
from .tasks import Task
from .train.build import metric_name
from .train.evaluate import EvalResult
from .train.evaluate import evaluate as evaluate_source
from .train.restore import evaluation_seed, evaluation_source, restore


def device_of(algorithm: Algorithm) -> torch.device:
    """Where the algorithm's weights live (the CPU for one without any)."""
    tensor = next(iter([*algorithm.parameters(), *algorithm.buffers()]), None)
    return torch.device("cpu") if tensor is None else tensor.device


def load(
    path: str | os.PathLike,
    ways: int | None = None,
    shots: int | None = None,
    queries: int | None = None,
    split: str | None = None,
    device: str | torch.device = "cpu",
) -> Algorithm:
    """The algorithm of a learnfast checkpoint, weights and config restored, in eval mode.

    Args:
        path: a ``.safetensors`` file that ``learnfast train`` wrote (``runs/NAME/best.safetensors``, ``zoo/...``).
            Nothing in it is executed.
        ways, shots, queries: override the evaluation episodes of the stored config (e.g. a 5-way
            checkpoint of a metric method tested at 20 ways); ``split`` the class split.
        device: where the algorithm goes (``"cpu"``, ``"cuda"``, ``"auto"``); checkpoints load on any device.

    Returns:
        The algorithm (an ``nn.Module``); its run config is ``algorithm.run_config``.
    """
    restored = restore(path, ways, shots, queries, split, device)
    restored.algorithm.run_config = restored.config
    return restored.algorithm


def evaluate(
    algorithm: Algorithm,
    source=None,
    episodes: int | None = None,
    seed: int | None = None,
    part: str = "test",
    inner_steps: int | None = None,
    data_root: str | Path | None = None,
    progress: bool = False,
) -> EvalResult:
    """Mean score ± 95% CI of ``algorithm`` on a fixed, seeded set of episodes (the papers' protocol).

    Args:
        algorithm: from ``load`` (or any algorithm, with ``source`` given).
        source: a task source (``.sample(n, generator) -> Task``, e.g. an ``EpisodeSampler``); default:
            the ``part`` classes of the algorithm's run config, episodes shaped as its ``[eval]`` section.
        episodes: how many (default: the config's ``eval.episodes``, else 600).
        seed: the episode set (default: the config's ``eval.seed`` for test; training's validation seed for val).
        part: ``"test"`` or ``"val"`` classes, when ``source`` is not given.
        inner_steps: test-time adaptation steps of a gradient-based algorithm.
        data_root: the data folder (default: ``learnfast.data.root.data_root``'s search).
        progress: a progress bar on stderr.

    Returns:
        ``EvalResult``: ``mean``, ``ci95``, per-episode ``values``; ``str()`` prints them.
    """
    cfg = getattr(algorithm, "run_config", None)
    if source is None and cfg is None:
        raise ValueError("pass source=... (a task source), or an algorithm from learnfast.load, whose config names its data")
    if source is None:
        source = evaluation_source(cfg, part, data_root)
    if cfg is not None:
        episodes = cfg.eval.episodes if episodes is None else episodes
        seed = evaluation_seed(cfg, part) if seed is None else seed
        metric = metric_name(cfg)
    else:
        metric = "accuracy" if algorithm.loss_name == "cross_entropy" else "mse"
    return evaluate_source(algorithm, source, metric, 600 if episodes is None else episodes, 0 if seed is None else seed,
                           inner_steps=inner_steps, progress=progress, device=device_of(algorithm))


def predict(
    algorithm: Algorithm,
    support_x: Tensor,
    support_y: Tensor,
    query_x: Tensor,
    transductive: bool = False,
    inner_steps: int | None = None,
) -> Tensor:
    """Predictions ``(Q, ...)`` for one task: adapt to ``support_x (S, ...)`` / ``support_y (S, ...)``, predict ``query_x (Q, ...)``.

    ``transductive=False`` (default): each query is predicted as if it were alone, so one image gets
    the same answer by itself as in a batch. Gradient-based algorithms trained with transductive
    BatchNorm then normalise the queries with the support set's statistics (``bn="support"``); the
    others see each query in its own task beside the support set. ``transductive=True`` predicts the
    query set as one batch, as the papers' evaluation does (``evaluate`` and ``learnfast eval``): a
    query set of one image is then normalised by itself, which MAML-family models get wrong.
    """
    kwargs = {} if inner_steps is None else {"inner_steps": inner_steps}
    n = query_x.shape[0]
    query_y = support_y.new_zeros((n, *support_y.shape[1:]))  # labels are not read when predicting
    inner = getattr(algorithm, "inner", None)
    device = device_of(algorithm)
    task = Task(support_x, support_y, query_x, query_y).unsqueeze().to(device)
    support_x, support_y, query_x, query_y = (field[0] for field in task)
    with torch.no_grad():
        if transductive:
            return algorithm(task, **kwargs)[0]
        if hasattr(inner, "bn"):  # transductive and per-step BatchNorm normalise the queries by themselves
            algorithm.inner = inner._replace(bn="support")
            try:
                return algorithm(task, **kwargs)[0]
            finally:
                algorithm.inner = inner
        each = Task(support_x.expand(n, *support_x.shape), support_y.expand(n, *support_y.shape),
                    query_x.unsqueeze(1), query_y.unsqueeze(1))  # one task per query: (Q, S, ...) / (Q, 1, ...)
        return algorithm(each, **kwargs)[:, 0]
