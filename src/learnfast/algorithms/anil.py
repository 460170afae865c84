"""ANIL: Almost No Inner Loop.

Raghu, Raghu, Bengio & Vinyals (2020). Rapid Learning or Feature Reuse? Towards Understanding the
Effectiveness of MAML. ICLR.

Raghu et al. find that a MAML-trained network barely changes its features during adaptation: the
inner loop's work is done by the output layer. ANIL therefore adapts only the head on the support
set and leaves the backbone at its meta-learned values, while the outer loop still trains every
parameter; the backbone's meta-gradient flows through the head's inner steps (second order), so it
learns features that a few head steps can use. It matches MAML's accuracy at a fraction of the
inner loop's cost.
"""
from __future__ import annotations

from torch import nn

from .._types import Params
from .maml import MAML


def owns(module_name: str, param_name: str) -> bool:
    """Whether ``param_name`` (as in ``named_parameters()``) lies inside the module ``module_name``."""
    return module_name == "" or param_name.startswith(module_name + ".")


def modules_with_parameters(model: nn.Module) -> list[str]:
    """Names of the modules that hold trainable parameters themselves, in registration order."""
    return [name for name, m in model.named_modules() if any(p.requires_grad for p in m.parameters(recurse=False))]


class ANIL(MAML):
    """MAML where only the output layer adapts in the inner loop.

    Args:
        model: the network to meta-learn; it must end in an output layer of ``ways`` units (or the
            regression width).
        inner_lr: inner-loop SGD step size of the head.
        inner_steps: inner steps while meta-training.
        eval_inner_steps: inner steps at test time (default: ``inner_steps``).
        first_order: legacy spelling of ``memory="first-order"`` (the backbone then learns only
            from the query loss at the adapted head).
        head: name of the head module, as in ``model.named_modules()`` (``"head"`` for ``Conv4``,
            ``"net.4"`` for ``MLP(hidden=(40, 40))``). Every parameter inside it adapts; the rest
            stay fixed. Default: the last module that holds parameters, which is the output layer
            of ``Conv4``, ``MLP`` and most ``nn.Sequential`` networks.
        loss: ``"cross_entropy"`` (classification) or ``"mse"`` (regression).
        strategy: meta-batch execution: ``"auto"`` (the fastest measured for the batch's device),
            ``"threads"``, ``"vmap"`` or ``"loop"`` (the reference); see ``algorithms/strategies.py``.
        memory: ``"second-order"``, ``"first-order"``, ``"checkpoint"`` (``strategy="loop"`` only)
            or ``"implicit"`` (iMAML on the head: the backbone's meta-gradient then includes the
            implicit cross term); see ``learnfast.inner``.
        implicit_lambda, cg_steps, cg_damping: iMAML's solver settings (``memory="implicit"`` only), as :class:`MAML`'s.
        bn: BatchNorm policy, ``"transductive"``, ``"support"`` or ``"per-step"``
            (``learnfast.batchnorm``).

    Example:
        >>> anil = ANIL(Conv4(out_features=5, strided=True), inner_lr=0.4, inner_steps=1)
        >>> anil.head_keys
        ('head.weight', 'head.bias')
        >>> anil.meta_loss(batch).loss.backward()          # batch: Task of (B, ...) tensors

    References:
        Raghu et al. (2020), https://arxiv.org/abs/1909.09157
    """

    def __init__(
        self,
        model: nn.Module,
        inner_lr: float = 0.4,
        inner_steps: int = 1,
        eval_inner_steps: int | None = None,
        first_order: bool = False,
        head: str | None = None,
        loss: str = "cross_entropy",
        strategy: str = "auto",
        memory: str | None = None,
        implicit_lambda: float | None = None,
        cg_steps: int | None = None,
        cg_damping: float | None = None,
        bn: str = "transductive",
    ) -> None:
        super().__init__(model, inner_lr, inner_steps, eval_inner_steps, first_order, loss, strategy, memory,
                         implicit_lambda, cg_steps, cg_damping, bn)
        holders = modules_with_parameters(model)
        if not holders:
            raise ValueError(f"{type(model).__name__} has no trainable parameters; ANIL needs a head to adapt")
        self.head = holders[-1] if head is None else head.rstrip(".")
        # parameter names relative to `model`, the keys `adapt` sees
        self.head_keys = tuple(k for k, p in model.named_parameters() if p.requires_grad and owns(self.head, k))
        if not self.head_keys:
            raise ValueError(
                f"head={head!r} names no module with trainable parameters in {type(model).__name__}; "
                f"pass one of {holders} (the output layer), or leave head unset to use the last one"
            )

    def adapted_keys(self, params: Params) -> list[str]:
        return [k for k in self.head_keys if k in params]  # a head frozen after construction does not adapt
