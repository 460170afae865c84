"""BatchNorm policies of the gradient-based algorithms, without touching the user's model.

``"transductive"`` (default; MAML, Finn et al. 2017): every forward pass normalises with the
    batch it is given, one task at a time; the query set is predicted as one batch, so each query's
    prediction depends on the other queries of its task (never on other tasks).
``"support"`` (non-transductive; Nichol et al. 2018, Bronskill et al. 2020): the query set is
    normalised with statistics of the support set at the current adapted weights. Each query is
    predicted as if it were alone; the meta-gradient flows through the support statistics.
``"per-step"`` (MAML++, Antoniou et al. 2019, "per-step batch normalization weights and biases"):
    the BatchNorm scales and shifts get one meta-learned copy per inner step. The forward pass of
    inner step ``k`` (and the query forward after ``k`` steps) uses copy ``k``; copy 0 is the
    model's own, copies ``1..n`` (``n`` = the training ``inner_steps``, so every copy is trained)
    live in ``StepNorms``; a step beyond ``n`` (more steps at test time) reuses copy ``n``. The
    copies are meta-parameters and do not adapt in the inner loop (as in MAML++); statistics stay
    per-task batch statistics (with ``track_running_stats=False`` there are no running statistics
    to keep per step).

Statistics never cross tasks: each task is its own forward call (or its own ``vmap`` slice).

References:
    Antoniou, Edwards & Storkey (2019). How to train your MAML. ICLR.
    Bronskill, Gordon, Requeima, Nowozin & Turner (2020). TaskNorm: Rethinking Batch Normalization
    for Meta-Learning. ICML.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Sequence

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from ._types import Params
from .functional import Mirror, forward_with

BN_POLICIES = ("transductive", "support", "per-step")


def check_bn(bn: str) -> str:
    if bn not in BN_POLICIES:
        raise ValueError(f"unknown bn policy {bn!r}; choose one of {BN_POLICIES}")
    return bn


def norm_keys(model: nn.Module) -> tuple[str, ...]:
    """Names (as in ``named_parameters()``) of the trainable scales and shifts of every BatchNorm layer."""
    return tuple(
        f"{module_name}.{leaf}" if module_name else leaf
        for module_name, module in model.named_modules() if isinstance(module, _BatchNorm)
        for leaf, p in module.named_parameters(recurse=False) if p.requires_grad
    )


class StepNorms(nn.Module):
    """Per-step copies of the model's BatchNorm scales and shifts, for ``bn="per-step"``.

    Parameters are named ``<step>.<name in the model>`` for steps ``1..steps`` (step 0 is the
    model's own), initialised to the model's current values.

    Args:
        model: the network whose BatchNorm parameters are copied.
        steps: the largest inner step count that gets its own copy.
    """

    def __init__(self, model: nn.Module, steps: int) -> None:
        super().__init__()
        params = dict(model.named_parameters())
        keys = norm_keys(model)
        if not keys:
            raise ValueError(f"bn='per-step' needs BatchNorm layers with trainable parameters; {type(model).__name__} has none")
        self.copies = nn.ModuleDict({
            str(step): Mirror({k: params[k].detach().clone() for k in keys}) for step in range(1, steps + 1)
        })

    def sets(self, own: Params) -> list[Params]:
        """``[set_0, ..., set_n]``: the parameters to overlay at each step.

        Args:
            own: this module's parameters keyed relative to it (``"copies.<step>.<name>"``), from
                the meta-parameters, so per-task copies under ``vmap`` are used.
        """
        sets: list[Params] = [{}]
        for step in range(1, len(self.copies) + 1):
            prefix = f"copies.{step}."
            sets.append({k[len(prefix):]: v for k, v in own.items() if k.startswith(prefix)})
        return sets


def per_step_norms(model: nn.Module, bn: str, steps: int) -> StepNorms | None:
    """The ``StepNorms`` an algorithm holds under ``bn="per-step"`` (copies for steps ``1..steps``), else ``None``."""
    return StepNorms(model, steps) if check_bn(bn) == "per-step" else None


def at_step(step_params: Sequence[Params], step: int) -> Params:
    """The overlay for inner step ``step``: ``step_params[step]``, the last one beyond the end, none if empty."""
    return step_params[min(step, len(step_params) - 1)] if step_params else {}


def _normalise_with_support(module: _BatchNorm, x: Tensor, n_support: int) -> Tensor:
    """BatchNorm of ``x (n, C, ...)`` in training form, with statistics of its first ``n_support`` rows."""
    dims = [0, *range(2, x.dim())]
    shape = (1, -1, *([1] * (x.dim() - 2)))
    support = x[:n_support]
    mean = support.mean(dims, keepdim=True)
    var = support.var(dims, unbiased=False, keepdim=True)  # BatchNorm normalises with the biased variance
    out = (x - mean) * torch.rsqrt(var + module.eps)
    if module.weight is not None:
        out = out * module.weight.view(shape) + module.bias.view(shape)
    return out


@contextmanager
def support_statistics(model: nn.Module, n_support: int) -> Iterator[None]:
    """Inside, every BatchNorm layer of ``model`` normalises its whole batch with the statistics of the first ``n_support`` rows.

    Forward hooks, removed on exit: the model's code and modules stay as they are.
    """

    def hook(module: _BatchNorm, args: tuple[Tensor, ...], output: Tensor) -> Tensor:
        return _normalise_with_support(module, args[0], n_support)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, _BatchNorm)]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def predict_query(model: nn.Module, params: Params, support_x: Tensor, query_x: Tensor, bn: str) -> Tensor:
    """Query predictions ``(Q, ...)`` of one task under the BatchNorm policy ``bn``.

    ``"support"`` forwards support and query together as one batch ``(S+Q, ...)`` with every
    BatchNorm layer normalising by the support rows' statistics: the support rows come out as in a
    support-only forward, and each query row depends on the support set and itself alone.
    """
    if bn != "support":
        return forward_with(model, params, query_x)
    n_support = support_x.shape[0]
    with support_statistics(model, n_support):
        return forward_with(model, params, torch.cat([support_x, query_x]))[n_support:]


def step_sets(step_norms: StepNorms | None, meta_params: Params, prefix: str = "step_norms.") -> list[Params]:
    """The per-step overlays of an algorithm whose ``StepNorms`` sits at ``prefix`` (none without one).

    Taken from ``meta_params`` so that the per-task copies under ``vmap`` are the ones used.
    """
    if step_norms is None:
        return []
    return step_norms.sets({k[len(prefix):]: v for k, v in meta_params.items() if k.startswith(prefix)})
