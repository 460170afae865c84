"""Parameter-dict arithmetic, functional forward passes over a plain ``nn.Module``, shared metric helpers.

The model is never rewritten: adapted weights live in a ``Params`` dict and reach the model
through ``torch.func.functional_call``. The metric helpers (class prototypes, squared Euclidean
distances, cosine similarities) are batched over tasks and shared by the metric-based algorithms.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from ._types import Params


def params_of(module: nn.Module) -> Params:
    """The module's trainable parameters, keyed like ``named_parameters()`` (tensors are shared, not copied)."""
    return {name: p for name, p in module.named_parameters() if p.requires_grad}


def forward_with(module: nn.Module, params: Params, x: Tensor) -> Tensor:
    """``module(x)`` with ``params`` in place of the module's own (missing keys fall back to the module's)."""
    return functional_call(module, params, (x,), strict=False)


def sgd_step(params: Params, grads: Params, lr: float | Params) -> Params:
    """``params - lr * grads`` key by key; ``lr`` may be a scalar or a per-parameter dict (Meta-SGD). Not in place."""
    if isinstance(lr, dict):
        return {k: p - lr[k] * grads[k] for k, p in params.items()}
    return {k: p - lr * grads[k] for k, p in params.items()}


def detach(params: Params) -> Params:
    """The same dict with every tensor detached from the graph."""
    return {k: v.detach() for k, v in params.items()}


def expand(params: Params, batch_size: int) -> Params:
    """Per-task views ``(B, *shape)`` of every parameter, for ``vmap`` over tasks (no copy)."""
    return {k: v.expand(batch_size, *v.shape) for k, v in params.items()}


def dot(a: Params, b: Params) -> Tensor:
    """``sum_k <a[k], b[k]>``: the inner product of two parameter dicts (keys of ``a``), a scalar."""
    return sum((a[k] * b[k]).sum() for k in a)


def prototypes(support_z: Tensor, support_y: Tensor, ways: int) -> Tensor:
    """Class means of support embeddings: ``(B, S, D)``, labels ``(B, S)`` -> ``(B, ways, D)``."""
    onehot = F.one_hot(support_y, ways).to(support_z.dtype)  # (B, S, N)
    return onehot.transpose(1, 2) @ support_z / onehot.sum(1).unsqueeze(-1)


def squared_distances(query_z: Tensor, protos: Tensor) -> Tensor:
    """Squared Euclidean distances: ``(B, Q, D)`` x ``(B, N, D)`` -> ``(B, Q, N)``."""
    return (query_z.pow(2).sum(-1, keepdim=True) - 2 * query_z @ protos.transpose(1, 2) + protos.pow(2).sum(-1).unsqueeze(1))


def cosine_similarity(query_z: Tensor, support_z: Tensor, eps: float = 1e-8) -> Tensor:
    """Cosine similarities: ``(B, Q, D)`` x ``(B, S, D)`` -> ``(B, Q, S)``; ``eps`` guards zero vectors."""
    return F.normalize(query_z, dim=-1, eps=eps) @ F.normalize(support_z, dim=-1, eps=eps).transpose(1, 2)


class Mirror(nn.Module):
    """Learnable tensors named like some of a model's parameters, one per entry of ``tensors``.

    The tensor for ``features.0.1.weight`` is this module's parameter ``features.0.1.weight``:
    sub-modules mirror the model's, so names need no escaping and checkpoints read naturally.
    Meta-SGD's learned rates and per-step BatchNorm parameters are mirrors; with ``buffers=True``
    the tensors are buffers (state saved in checkpoints, not trained), e.g. Reptile's carried Adam moments.
    """

    def __init__(self, tensors: Params, buffers: bool = False) -> None:
        super().__init__()
        self.buffers_only = buffers
        for name, value in tensors.items():
            *path, leaf = name.split(".")
            node: nn.Module = self
            for part in path:
                if part not in node._modules:
                    node.add_module(part, nn.Module())
                node = node._modules[part]
            if buffers:
                node.register_buffer(leaf, value)
            else:
                node.register_parameter(leaf, nn.Parameter(value))

    def as_dict(self) -> Params:
        """The tensors keyed like the mirrored parameters (shared, not copied)."""
        return dict(self.named_buffers() if self.buffers_only else self.named_parameters())


def preprocess_gradient(x: Tensor, p: float = 10.0) -> Tensor:
    """The log-magnitude / sign preprocessing of learned optimizers, elementwise: ``(...,) -> (..., 2)``.

    ``(log|x| / p, sign x)`` where ``|x| >= e^-p``, else ``(-1, e^p x)``: gradients of very
    different scales reach an LSTM as inputs of similar size (Andrychowicz et al. 2016, appendix A;
    Ravi & Larochelle 2017 use the same for the gradient and the loss).
    """
    big = x.abs() >= math.exp(-p)
    log_part = torch.where(big, x.abs().clamp_min(math.exp(-p)).log() / p, torch.full_like(x, -1.0))
    sign_part = torch.where(big, torch.sign(x), math.exp(p) * x)
    return torch.stack([log_part, sign_part], dim=-1)
