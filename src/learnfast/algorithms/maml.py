"""Model-Agnostic Meta-Learning: second order, first order, checkpointed, or implicit (iMAML).

Finn, Abbeel & Levine (2017). Model-Agnostic Meta-Learning for Fast Adaptation of Deep Networks. ICML.
Rajeswaran, Finn, Kakade & Levine (2019). Meta-Learning with Implicit Gradients. NeurIPS.

MAML learns an initialisation from which a few gradient steps on a task's support set give a good
model for its query set; the meta-gradient flows through those steps (second order), or treats
the inner gradients as constants (first order, FOMAML). iMAML instead solves a proximal inner
problem and gets the meta-gradient by the implicit function theorem, in memory independent of the
number of inner steps.
"""
from __future__ import annotations

from torch import Tensor, nn

from .._types import Params
from ..batchnorm import per_step_norms, step_sets
from ..inner import InnerOptimizer, inner_loop, sgd
from ..tasks import Task
from .base import Algorithm, implicit_options, inner_steps_pair, submodule_params


class MAML(Algorithm):
    """MAML over any backbone whose output layer has ``ways`` units (or the regression width).

    Args:
        model: the network to meta-learn (a plain ``nn.Module``).
        inner_lr: inner-loop SGD step size (alpha).
        inner_steps: inner steps while meta-training.
        eval_inner_steps: inner steps at test time (default: ``inner_steps``).
        first_order: legacy spelling of ``memory="first-order"`` (FOMAML); with any other
            ``memory`` it is an error.
        loss: ``"cross_entropy"`` (classification) or ``"mse"`` (regression).
        strategy: meta-batch execution: ``"auto"`` (the fastest measured for the batch's device),
            ``"threads"``, ``"vmap"`` or ``"loop"`` (the reference); see ``algorithms/strategies.py``.
        memory: how the meta-gradient is kept (``learnfast.inner``; default ``"second-order"``, or
            ``"first-order"`` with ``first_order=True``): ``"second-order"`` (exact),
            ``"first-order"``, ``"checkpoint"`` (exact, activation checkpointing through the inner
            loop; ``strategy="loop"`` only) or ``"implicit"`` (iMAML; the inner loop then
            minimises the support loss plus ``implicit_lambda/2 ||phi - theta||^2``).
        implicit_lambda: iMAML's proximal strength lambda (default 1.0).
        cg_steps: conjugate-gradient iterations of the implicit solve (default 5).
        cg_damping: adds ``cg_damping * I`` to the implicit system ``I + H/lambda`` (default 0).
            These three apply to ``memory="implicit"`` only; with another memory they are an error.
        bn: BatchNorm policy (``learnfast.batchnorm``): ``"transductive"`` (per-task batch
            statistics, the paper's), ``"support"`` (query normalised with support statistics)
            or ``"per-step"`` (MAML++ per-step BatchNorm scales and shifts).

    Example:
        >>> maml = MAML(Conv4(out_features=5, strided=True), inner_lr=0.4, inner_steps=1)
        >>> maml.meta_loss(batch).loss.backward()          # batch: Task of (B, ...) tensors
        >>> imaml = MAML(Conv4(out_features=5, strided=True), inner_steps=20, memory="implicit", implicit_lambda=2.0)

    References:
        Finn et al. (2017), https://arxiv.org/abs/1703.03400;
        Rajeswaran et al. (2019), https://arxiv.org/abs/1909.04630
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
        implicit_lambda: float | None = None,
        cg_steps: int | None = None,
        cg_damping: float | None = None,
        bn: str = "transductive",
    ) -> None:
        super().__init__(loss=loss, strategy=strategy)
        if first_order and memory == "second-order":
            raise ValueError("first_order=True contradicts memory='second-order'; drop one of them "
                             "(first_order=True is the legacy spelling of memory='first-order')")
        self.model = model
        self.inner_lr = inner_lr
        self.inner_steps, self.eval_inner_steps = inner_steps_pair(inner_steps, eval_inner_steps)
        memory = memory or ("first-order" if first_order else "second-order")
        self.inner = inner_loop(memory, first_order, bn, strategy, **implicit_options(memory, implicit_lambda, cg_steps, cg_damping))
        self.first_order = self.inner.memory == "first-order"
        self.step_norms = per_step_norms(model, bn, self.inner_steps)

    def adapted_keys(self, params: Params) -> list[str] | None:
        """Which of ``model``'s parameters the inner loop adapts; ``None``: every one (MAML)."""
        return None

    def inner_update(self, meta_params: Params) -> InnerOptimizer:
        """The inner loop's update rule: SGD at ``inner_lr`` (Meta-SGD: at its learned rates)."""
        return sgd(self.inner_lr)

    def task_predict(self, meta_params: Params, task: Task, inner_steps: int) -> Tensor:
        params = submodule_params(meta_params)
        return self.inner.predict(
            self.model, params, task, self.loss_fn, inner_steps, self.inner_update(meta_params),
            adapt_keys=self.adapted_keys(params), step_params=step_sets(self.step_norms, meta_params),
        )
