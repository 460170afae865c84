"""TADAM: task-dependent adaptive metric.

Oreshkin, Rodríguez López & Lacoste (2018). TADAM: Task dependent adaptive metric for improved
few-shot learning. NeurIPS.

A Prototypical Network whose embedding depends on the task. A first, unconditioned pass embeds the
support set; the mean of its class prototypes is the task representation ``c``. A task embedding
network (TEN) maps ``c`` to a FiLM scale and shift ``(gamma, beta)`` per channel of the encoder's
BatchNorm layers, and a second pass embeds support and query items with every normalised activation
``h`` replaced by ``gamma * h + beta``: tasks whose representations are close get similar embedding
functions. A query is classified by a softmax over ``-alpha * ||f(q) - p_c||^2``, where the learned
metric scale ``alpha`` sets how sharp the softmax is. The TEN starts at the identity
(``gamma = 1, beta = 0``), so an untrained TADAM is exactly a ProtoNet with metric scale ``alpha``.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn

from .._types import Params
from ..functional import forward_with, prototypes, squared_distances
from ..models.probe import like_model, output_shape
from ..tasks import Task, check_batch
from .base import Algorithm, MetaOutput, per_task, query_loss

# Layers FiLM folds into: their output channel c is `weight[c] * (...) + bias[c]`, so
# `gamma * out + beta` is the same layer with weight `gamma * weight` and bias `gamma * bias + beta`.
FILM_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def default_film_layers(model: nn.Module) -> tuple[str, ...]:
    """The affine BatchNorm layers of ``model`` (TADAM's choice); for a model without any, its
    ``nn.Linear`` / ``nn.Conv`` layers with a bias except the last (FiLM on hidden pre-activations)."""
    norms = [n for n, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine]
    if norms:
        return tuple(norms)
    layers = [n for n, m in model.named_modules() if isinstance(m, FILM_TYPES) and m.bias is not None]
    return tuple(layers[:-1])


def _check_film_layer(model: nn.Module, name: str) -> int:
    """Number of channels FiLM conditions in layer ``name``; ``ValueError`` if it cannot be folded into the layer."""
    try:
        layer = model.get_submodule(name)
    except AttributeError as err:
        raise ValueError(f"film_layers names {name!r}, which is not a submodule of {type(model).__name__}; "
                         f"choose among {[n for n, _ in model.named_modules() if n]}") from err
    if not isinstance(layer, FILM_TYPES) or getattr(layer, "weight", None) is None or getattr(layer, "bias", None) is None:
        raise ValueError(
            f"film_layers names {name!r}, a {type(layer).__name__}; FiLM needs an affine BatchNorm, nn.Linear or "
            f"nn.Conv1d/2d/3d layer with a weight and a bias (it is folded into them)"
        )
    return layer.weight.shape[0]


class TADAM(Algorithm):
    """Task-conditioned metric: ProtoNet with a task-dependent FiLM-ed encoder and a learned metric scale.

    **FiLM without rewriting the model.** ``gamma * (w * h + b) + beta`` equals the same layer with
    weight ``gamma * w`` and bias ``gamma * b + beta``. So the conditioned pass is the encoder's own
    forward through ``torch.func.functional_call`` with those per-task weights for the conditioned
    layers (``per_task``): no hooks, no copied modules, and any backbone works whose
    conditioned layers are affine BatchNorm, ``nn.Linear`` or ``nn.Conv`` layers with a bias. By
    default these are the encoder's affine BatchNorm layers, i.e. FiLM right after each
    normalisation as in the paper (Conv4: one per block); an encoder without BatchNorm has its
    hidden ``Linear``/``Conv`` layers conditioned instead. ``ValueError`` when there is none.

    **TEN.** One linear map per conditioned layer, ``c (D) -> (delta_gamma, beta) (2C)``, with
    ``gamma = 1 + delta_gamma``, zero-initialised so the conditioning starts at the identity.
    The paper's TEN has hidden FC layers and scalar post-multipliers initialised at 0; both start
    at the identity, but a zero factor in front of a hidden layer leaves that layer without a
    gradient at the first step, while a zero linear map still gets ``dL/dW = dL/dout * c``.

    Every task's items go through the encoder in one call (``per_task``), so BatchNorm statistics
    never mix tasks; the unconditioned pass sees the support set only, so the task embedding
    depends on nothing else.

    Args:
        model: the embedding network ``(n, ...) -> (n, D)``; any trailing shape is flattened to D.
        in_shape: shape of one input item, used once to read D off ``model``; default ``(in_features,)``
            for a first ``nn.Linear``, ``(in_channels, 28, 28)`` for a first ``nn.Conv2d``.
        film_layers: names (as in ``model.named_modules()``) of the layers to condition; default above.
        metric_scale: initial alpha (1: the plain ProtoNet metric).
        learn_metric_scale: learn alpha (paper) or keep it fixed.

    Returns (forward): logits ``(B, Q, ways)``, ``-alpha`` times the squared distances to the prototypes.

    Example:
        >>> tadam = TADAM(Conv4())                          # FiLM after the 4 BatchNorm layers
        >>> tadam.meta_loss(batch).loss.backward()           # batch: Task of (B, ...) tensors
        >>> tadam.embed_task(batch).shape                    # (B, 64), for nearest-task look-up
        torch.Size([2, 64])
    """

    needs_head = False

    def __init__(
        self,
        model: nn.Module,
        in_shape: tuple[int, ...] | None = None,
        film_layers: Sequence[str] | None = None,
        metric_scale: float = 1.0,
        learn_metric_scale: bool = True,
    ) -> None:
        super().__init__(loss="cross_entropy")
        if not metric_scale > 0:
            raise ValueError(f"metric_scale must be > 0 (it multiplies the negative distances), got {metric_scale}")
        self.model = model
        self.film_layers = tuple(default_film_layers(model) if film_layers is None else film_layers)
        if not self.film_layers:
            raise ValueError(
                f"{type(model).__name__} has no layer TADAM can condition: FiLM goes after affine BatchNorm layers "
                f"(or, without any, after hidden nn.Linear / nn.Conv layers with a bias). Use a backbone with "
                f"BatchNorm such as conv4, or name layers with film_layers=(...)"
            )
        channels = [_check_film_layer(model, name) for name in self.film_layers]
        dim = math.prod(output_shape(model, in_shape))
        self.ten = like_model(nn.ModuleList(nn.Linear(dim, 2 * c) for c in channels), model)
        for generator in self.ten:  # identity at initialisation: gamma = 1, beta = 0 for every task
            nn.init.zeros_(generator.weight)
            nn.init.zeros_(generator.bias)
        scale = torch.tensor(float(metric_scale), dtype=self.ten[0].weight.dtype, device=self.ten[0].weight.device)
        if learn_metric_scale:
            self.metric_scale = nn.Parameter(scale)
        else:
            self.register_buffer("metric_scale", scale)

    def embed_task(self, task: Task) -> Tensor:
        """Task representations ``c`` ``(B, D)``: the mean of the class prototypes of the unconditioned encoder.

        Depends on the support set only; deterministic (per-task BatchNorm statistics, no sampling).
        Close vectors mean similar tasks, and similar FiLM conditioning.
        """
        check_batch(task)
        ways = int(task.support_y.max()) + 1
        support_z = per_task(self.model, task.support_x).flatten(2)  # (B, S, D)
        return prototypes(support_z, task.support_y, ways).mean(1)  # (B, N, D) -> (B, D)

    def film_params(self, task_embedding: Tensor) -> Params:
        """Per-task weights of the conditioned layers, ``(B, *shape)`` each, with FiLM folded in."""
        params: Params = {}
        for name, generator in zip(self.film_layers, self.ten):
            layer = self.model.get_submodule(name)
            delta_gamma, beta = generator(task_embedding).chunk(2, dim=-1)  # (B, C) each
            gamma = 1 + delta_gamma
            params[f"{name}.weight"] = gamma.view(*gamma.shape, *[1] * (layer.weight.dim() - 1)) * layer.weight
            params[f"{name}.bias"] = gamma * layer.bias + beta
        return params

    def forward(self, batch: Task) -> Tensor:
        c = self.embed_task(batch)  # (B, D); checks the batch
        ways = int(batch.support_y.max()) + 1
        s = batch.support_x.shape[1]
        x = torch.cat([batch.support_x, batch.query_x], dim=1)  # (B, S+Q, ...)
        params = self.film_params(c)
        z = per_task(lambda p, items: forward_with(self.model, p, items), params, x).flatten(2)  # (B, S+Q, D)
        return -self.metric_scale * squared_distances(z[:, s:], prototypes(z[:, :s], batch.support_y, ways))

    def meta_loss(self, batch: Task, generator: torch.Generator | None = None) -> MetaOutput:
        logits = self(batch)
        return MetaOutput(query_loss(self.loss_fn, logits, batch.query_y), logits.detach())
