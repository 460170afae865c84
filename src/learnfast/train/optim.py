"""Optimizers and learning-rate schedules of the training phases, from their config sections.

``[train]`` (the outer loop) and ``[pretrain]`` share the keys ``optimizer`` (``"adam"`` or
``"sgd"``), ``lr``, ``momentum`` (SGD only) and ``lr_anneal`` (linear decay to 0 over the phase's
iterations, Reptile's outer schedule); ``[train]`` also has ``lr_halve_every`` (ProtoNet's).
"""
from __future__ import annotations

from typing import Any, Iterable

import torch

from .config import ConfigError

OPTIMIZERS = ("adam", "sgd")


def check_optimizer(section: Any, where: str) -> None:
    """Raises ``ConfigError`` naming the key when ``section``'s optimizer settings do not fit together."""
    if section.optimizer not in OPTIMIZERS:
        raise ConfigError(f"{where} optimizer = {section.optimizer!r} is not known; choose \"adam\" or \"sgd\"")
    if not section.lr > 0:
        raise ConfigError(f"{where} lr = {section.lr!r} must be > 0")
    if not 0.0 <= section.momentum < 1.0:
        raise ConfigError(f"{where} momentum = {section.momentum!r} must be in [0, 1)")
    if section.momentum and section.optimizer != "sgd":
        raise ConfigError(
            f"{where} momentum = {section.momentum} applies to optimizer = \"sgd\" only (Adam has its own averaging); "
            f"set optimizer = \"sgd\" or drop momentum"
        )
    if getattr(section, "lr_halve_every", 0) < 0:
        raise ConfigError(f"{where} lr_halve_every = {section.lr_halve_every} must be >= 0 (0: never)")
    if section.lr_anneal and getattr(section, "lr_halve_every", 0):
        raise ConfigError(f"{where} lr_anneal = true and lr_halve_every = {section.lr_halve_every} are two schedules; choose one")


def make_optimizer(params: Iterable[torch.Tensor], section: Any) -> torch.optim.Optimizer:
    """The optimizer ``section.optimizer`` over ``params`` at ``section.lr`` (checked by :func:`check_optimizer`)."""
    if section.optimizer == "sgd":
        return torch.optim.SGD(params, lr=section.lr, momentum=section.momentum)
    return torch.optim.Adam(params, lr=section.lr)


def scheduled_lr(section: Any, iteration: int, iterations: int) -> float:
    """The learning rate of step ``iteration + 1`` (``iteration`` steps done) of ``iterations``.

    ``lr_anneal``: ``lr * (1 - iteration / iterations)``, reaching 0 after the last step;
    ``lr_halve_every = n``: ``lr * 0.5 ** (iteration // n)``; otherwise ``lr``.
    """
    if section.lr_anneal:
        return section.lr * (1.0 - iteration / iterations)
    halve_every = getattr(section, "lr_halve_every", 0)
    return section.lr * 0.5 ** (iteration // halve_every) if halve_every else section.lr


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
