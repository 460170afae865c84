"""Meta-SGD: a learned initialisation and a learned per-parameter inner learning rate.

Li, Zhou, Chen & Li (2017). Meta-SGD: Learning to Learn Quickly for Few-Shot Learning. arXiv:1707.09835.

Meta-SGD is MAML whose scalar inner step size becomes a tensor ``alpha`` of the same shape as the
parameters: the inner update is ``theta - alpha * grad`` element-wise, so ``alpha`` sets both the
size and the direction of each coordinate's step. ``alpha`` is meta-trained with the
initialisation by the same outer gradient, and one inner step is usually enough.
"""
from __future__ import annotations

import torch
from torch import nn

from .._types import Params
from ..batchnorm import norm_keys
from ..functional import Mirror
from ..inner import InnerOptimizer, sgd
from .base import submodule_params
from .maml import MAML

RATES = "inner_lrs."


class LearnedRates(Mirror):
    """One learnable rate tensor per trainable parameter of ``model``, named and shaped like it.

    The rate of ``features.0.0.weight`` is the parameter ``features.0.0.weight`` of this module
    (``as_dict()`` keys them like the model's ``named_parameters()``). Parameters named in
    ``exclude`` (those that do not adapt) get no rate.
    """

    def __init__(self, model: nn.Module, init: float, exclude: tuple[str, ...] = ()) -> None:
        super().__init__({name: torch.full_like(p, init) for name, p in model.named_parameters() if p.requires_grad and name not in exclude})


class MetaSGD(MAML):
    """Meta-SGD over any backbone whose output layer has ``ways`` units (or the regression width).

    Meta-parameters: the model's (``model.*``) and the rates (``inner_lrs.*``, same shapes), both
    trained by the outer optimizer and both batched by either strategy.

    Args:
        model: the network to meta-learn (a plain ``nn.Module``).
        inner_lr: initial value of every learned rate (alpha).
        inner_steps: inner steps while meta-training (the paper uses one).
        eval_inner_steps: inner steps at test time (default: ``inner_steps``).
        first_order: legacy spelling of ``memory="first-order"`` (the rates still get gradients,
            through the step itself).
        loss: ``"cross_entropy"`` (classification) or ``"mse"`` (regression).
        strategy: meta-batch execution: ``"auto"`` (the fastest measured for the batch's device),
            ``"threads"``, ``"vmap"`` or ``"loop"`` (the reference); see ``algorithms/strategies.py``.
        memory: ``"second-order"``, ``"first-order"`` or ``"checkpoint"`` (``strategy="loop"``
            only); see ``learnfast.inner``. Not ``"implicit"``: the proximal solution does not
            depend on the step sizes, so the rates would never learn.
        bn: BatchNorm policy, ``"transductive"``, ``"support"`` or ``"per-step"``
            (``learnfast.batchnorm``; with ``"per-step"`` the BatchNorm parameters do not adapt,
            so they get no rates).

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
        strategy: str = "auto",
        memory: str | None = None,
        bn: str = "transductive",
    ) -> None:
        if memory == "implicit":
            raise ValueError("Meta-SGD cannot use memory='implicit': the proximal inner solution does not depend on the "
                             "learned rates, so they would get no gradient; use memory='second-order' or 'checkpoint', "
                             "or MAML / ANIL with memory='implicit'")
        super().__init__(model, inner_lr, inner_steps, eval_inner_steps, first_order, loss, strategy, memory, bn=bn)
        self.inner_lrs = LearnedRates(model, inner_lr, exclude=norm_keys(model) if bn == "per-step" else ())

    def inner_update(self, meta_params: Params) -> InnerOptimizer:
        # rates frozen with requires_grad_(False) are not meta-parameters: use the module's own
        return sgd({**self.inner_lrs.as_dict(), **submodule_params(meta_params, RATES)})
