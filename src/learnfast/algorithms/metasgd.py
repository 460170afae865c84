"""Meta-SGD: a learned initialisation and a learned per-parameter inner learning rate.

Li, Zhou, Chen & Li (2017). Meta-SGD: Learning to Learn Quickly for Few-Shot Learning. arXiv:1707.09835.

Meta-SGD is MAML whose scalar inner step size becomes a tensor ``alpha`` of the same shape as the
parameters: the inner update is ``theta - alpha * grad`` element-wise, so ``alpha`` sets both the
size and the direction of each coordinate's step. ``alpha`` is meta-trained with the
initialisation by the same outer gradient, and one inner step is usually enough.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .._types import Params
from ..functional import forward_with
from ..inner import adapt, sgd
from ..tasks import Task
from .base import Algorithm, inner_steps_pair, submodule_params

RATES = "inner_lrs."


class LearnedRates(nn.Module):
    """One learnable rate tensor per trainable parameter of ``model``, named and shaped like it.

    The rate of ``features.0.0.weight`` is the parameter ``features.0.0.weight`` of this module:
    sub-modules mirror the model's, so names need no escaping and checkpoints read naturally.
    """

    def __init__(self, model: nn.Module, init: float) -> None:
        super().__init__()
        nodes: dict[str, nn.Module] = {"": self}
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            *path, leaf = name.split(".")
            parent = ""
            for part in path:
                child = f"{parent}.{part}" if parent else part
                if child not in nodes:
                    nodes[child] = nn.Module()
                    nodes[parent].add_module(part, nodes[child])
                parent = child
            nodes[parent].register_parameter(leaf, nn.Parameter(torch.full_like(p, init)))

    def as_dict(self) -> Params:
        """The rates keyed like the model's ``named_parameters()`` (tensors shared, not copied)."""
        return dict(self.named_parameters())


class MetaSGD(Algorithm):
    """Meta-SGD over any backbone whose output layer has ``ways`` units (or the regression width).

    Meta-parameters: the model's (``model.*``) and the rates (``inner_lrs.*``, same shapes), both
    trained by the outer optimizer and both batched by either strategy.

    Args:
        model: the network to meta-learn (a plain ``nn.Module``).
        inner_lr: initial value of every learned rate (alpha).
        inner_steps: inner steps while meta-training (the paper uses one).
        eval_inner_steps: inner steps at test time (default: ``inner_steps``).
        first_order: drop second-order terms (the rates still get gradients, through the step itself).
        loss: ``"cross_entropy"`` (classification) or ``"mse"`` (regression).
        strategy: meta-batch execution, ``"loop"`` (reference) or ``"vmap"``.

    Example:
        >>> metasgd = MetaSGD(Conv4(out_features=5, strided=True), inner_lr=0.4)
        >>> metasgd.meta_loss(batch).loss.backward()      # grads on model.* and inner_lrs.*

    References:
        Li et al. (2017), https://arxiv.org/abs/1707.09835
    """

    def __init__(
        self,
        model: nn.Module,
        inner_lr: float = 0.4,
        inner_steps: int = 1,
        eval_inner_steps: int | None = None,
        first_order: bool = False,
        loss: str = "cross_entropy",
        strategy: str = "loop",
    ) -> None:
        super().__init__(loss=loss, strategy=strategy)
        self.model = model
        self.inner_lrs = LearnedRates(model, inner_lr)
        self.first_order = first_order
        self.inner_steps, self.eval_inner_steps = inner_steps_pair(inner_steps, eval_inner_steps)

    def task_predict(self, meta_params: Params, task: Task, inner_steps: int) -> Tensor:
        params = submodule_params(meta_params)
        # rates frozen with requires_grad_(False) are not meta-parameters: use the module's own
        rates = {**self.inner_lrs.as_dict(), **submodule_params(meta_params, RATES)}
        fast = adapt(
            self.model, params, task.support_x, task.support_y, self.loss_fn,
            steps=inner_steps, update=sgd(rates), first_order=self.first_order,
        )
        return forward_with(self.model, fast, task.query_x)
