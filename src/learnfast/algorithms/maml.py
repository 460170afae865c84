"""Model-Agnostic Meta-Learning, second- and first-order.

Finn, Abbeel & Levine (2017). Model-Agnostic Meta-Learning for Fast Adaptation of Deep Networks. ICML.

MAML learns an initialisation from which a few gradient steps on a task's support set give a good
model for its query set; the meta-gradient flows through those steps (second order), or treats
the inner gradients as constants (first order, FOMAML).
"""
from __future__ import annotations

from torch import Tensor, nn

from .._types import Params
from ..functional import forward_with
from ..inner import adapt, sgd
from ..tasks import Task
from .base import Algorithm, inner_steps_pair, submodule_params



class MAML(Algorithm):
    """MAML over any backbone whose output layer has ``ways`` units (or the regression width).

    Args:
        model: the network to meta-learn (a plain ``nn.Module``).
        inner_lr: inner-loop SGD step size (alpha).
        inner_steps: inner steps while meta-training.
        eval_inner_steps: inner steps at test time (default: ``inner_steps``).
        first_order: drop second-order terms of the meta-gradient.
        loss: ``"cross_entropy"`` (classification) or ``"mse"`` (regression).
        strategy: meta-batch execution, ``"loop"`` (reference) or ``"vmap"``.

    Example:
        >>> maml = MAML(Conv4(out_features=5, strided=True), inner_lr=0.4, inner_steps=1)
        >>> maml.meta_loss(batch).loss.backward()          # batch: Task of (B, ...) tensors
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
        self.inner_lr, self.first_order = inner_lr, first_order
        self.inner_steps, self.eval_inner_steps = inner_steps_pair(inner_steps, eval_inner_steps)

    def task_predict(self, meta_params: Params, task: Task, inner_steps: int) -> Tensor:
        params = submodule_params(meta_params)
        fast = adapt(
            self.model, params, task.support_x, task.support_y, self.loss_fn,
            steps=inner_steps, update=sgd(self.inner_lr), first_order=self.first_order,
        )
        return forward_with(self.model, fast, task.query_x)
