"""CLINC150 as intent-detection papers report it: all 150 intents at once, K labelled utterances each.

Casanueva et al. (2020) and Zhang et al. (2020) train on K = 5, 10 or 30 utterances per intent drawn
from the official training set and test on the whole official test set (30 per intent, 4500). Here
one "episode" is that task: a 150-way K-shot support set drawn from the official training utterances
(seeded, one draw per trial) and the 4500 official test utterances as queries; the learner adapts
to the support set as for any episode. The accuracy is reported over ``trials`` draws (mean, sample
standard deviation, and 1.96 std / sqrt(trials)), as Zhang et al. report 5 trials.

A checkpoint meta-trained on CLINC150's ``intents`` or ``domains`` split has seen every utterance of
its meta-training intents, official test ones included, so its score here is not a few-shot score
(``seen_intents`` counts them; ``learnfast eval --clinc150-full`` warns), and only a learner that never trained on CLINC150 (e.g.
MiniLM's fixed embeddings) gives a number comparable with the papers'.

References:
    Casanueva et al. (2020). Efficient Intent Detection with Dual Sentence Encoders. NLP4ConvAI.
    Zhang et al. (2020). Discriminative Nearest Neighbor Few-Shot Intent Detection by Transferring Natural Language Inference. EMNLP.
"""
from __future__ import annotations

import math
import statistics
from pathlib import Path

import torch
from torch import nn

from ..data.clinc150 import clinc150_official, clinc150_split
from ..tasks import Task
from .build import encode_texts
from .config import ConfigError, RunConfig

FULL_SEED = 2020  # the support draws of the trials


def full_intent_accuracy(algorithm: nn.Module, cfg: RunConfig, shots: int = 10, trials: int = 5,
                         root: str | Path | None = None, device: torch.device | str = "cpu") -> dict:
    """150-way ``shots``-shot accuracy on the official test set over ``trials`` support draws; texts encoded for ``cfg``."""
    if cfg.data.dataset != "clinc150":
        raise ConfigError(f"--clinc150-full reads CLINC150 texts; this checkpoint was trained on {cfg.data.dataset!r}")
    if getattr(algorithm, "needs_head", False):
        raise ConfigError(f"{cfg.algorithm['name']} has an output layer of {cfg.train.ways} units, not 150; the 150-way setting "
                          f"needs a method that takes any number of classes (protonet, baseline, matching, ...)")
    train, test = clinc150_official("train", root), clinc150_official("test", root)
    if train.class_names != test.class_names:
        raise ValueError("CLINC150's official train and test parts name different intents")
    train_x, test_x = encode_texts(cfg, train.inputs), encode_texts(cfg, test.inputs)
    ways = train.num_classes
    scores = []
    algorithm.eval()
    with torch.no_grad():
        for trial in range(trials):
            generator = torch.Generator().manual_seed(FULL_SEED + trial)
            picks = [torch.nonzero(train.labels == c).flatten() for c in range(ways)]
            rows = torch.cat([p[torch.randperm(p.numel(), generator=generator)[:shots]] for p in picks])  # class-major
            task = Task(train_x[rows][None], train.labels[rows][None], test_x[None], test.labels[None]).to(device)
            predicted = algorithm(task).argmax(-1)[0].cpu()
            scores.append((predicted == test.labels).float().mean().item())
    std = statistics.stdev(scores) if trials > 1 else float("nan")
    return {"ways": ways, "shots": shots, "trials": trials, "queries": test.labels.numel(), "mean": statistics.mean(scores),
            "std": std, "ci95": 1.96 * std / math.sqrt(trials) if trials > 1 else float("nan"), "scores": scores}


def seen_intents(cfg: RunConfig, root: str | Path | None = None) -> int:
    """How many intents a checkpoint of ``cfg`` meta-trained on, every utterance of them (official test ones too)."""
    return clinc150_split(cfg.data.split, "train", root).num_classes
