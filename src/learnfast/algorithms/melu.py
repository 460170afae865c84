"""MeLU: meta-learned user preference estimator for cold-start recommendation.

Lee, Im, Jang, Cho & Chung (2019). MeLU: Meta-Learned User Preference Estimator for Cold-Start
Recommendation. KDD.

Each user is a task: a few of their ratings are the support set, others the query set. The
network (``learnfast.models.melu.MeLUNet``) embeds user and item attributes and predicts the
rating with MLP decision layers. MeLU is MAML in which only the decision layers adapt per user
(the local update, ``adapt_keys``), while the global update trains embeddings and decision layers
together through those steps. ``learned_rates=True`` replaces the scalar local rate by Meta-SGD's
per-parameter rates on the decision layers; ``memory="first-order"`` is the first-order variant.
"""
from __future__ import annotations

from typing import Any

from torch import nn

from .._types import Params
from ..inner import InnerOptimizer, sgd
from .base import submodule_params
from .maml import MAML
from .metasgd import RATES, LearnedRates


class MeLU(MAML):
    """MAML with a local update of the decision layers only.

    Args:
        model: a network with a ``decision_keys()`` method naming the parameters that adapt
            (``MeLUNet``: ``decision.*``); every other parameter is learned globally only.
        inner_lr: local-update rate (paper: 5e-6), or the initial value of every learned rate.
        inner_steps: local-update steps while meta-training (paper: 1).
        eval_inner_steps: local-update steps at test time (default: ``inner_steps``).
        first_order: legacy spelling of ``memory="first-order"``.
        learned_rates: Meta-SGD rates (one per decision-layer weight) instead of ``inner_lr``.
        loss: ``"mse"`` (rating regression, the paper's) or ``"cross_entropy"``.
        strategy: meta-batch execution, as :class:`MAML`'s.
        memory: ``"second-order"`` (the paper's), ``"first-order"`` or ``"checkpoint"``; see ``learnfast.inner``.

    Example:
        >>> from learnfast.models.melu import MeLUNet
        >>> melu = MeLU(MeLUNet(user_fields=(3, 8), item_fields=(9,), multi_hot=19), inner_lr=0.1, inner_steps=1)
        >>> batch = lf.Task(torch.ones(2, 5, 24), torch.ones(2, 5, 1), torch.ones(2, 10, 24), torch.ones(2, 10, 1))
        >>> melu.meta_loss(batch).loss.backward()      # in practice: ColdStartTasks(...).sample(32, generator)
        >>> melu(batch).shape                          # predicted ratings of each user's query items
        torch.Size([2, 10, 1])

    References:
        Lee et al. (2019), https://arxiv.org/abs/1908.00413
    """

    def __init__(
        self,
        model: nn.Module,
        inner_lr: float = 5e-6,
        inner_steps: int = 1,
        eval_inner_steps: int | None = None,
        first_order: bool = False,
        learned_rates: bool = False,
        loss: str = "mse",
        strategy: str = "auto",
        memory: str | None = None,
    ) -> None:
        if not callable(getattr(model, "decision_keys", None)):
            raise TypeError(f"MeLU adapts the decision layers named by model.decision_keys(); {type(model).__name__} has no "
                            f"such method (use learnfast.models.melu.MeLUNet, or add it to your network)")
        if memory == "implicit":
            raise ValueError("MeLU takes memory='second-order', 'first-order' or 'checkpoint'; iMAML's implicit solve is "
                             "available through algorithm 'anil' or 'maml'")
        super().__init__(model, inner_lr, inner_steps, eval_inner_steps, first_order, loss, strategy, memory)
        self.decision_keys = tuple(model.decision_keys())
        if not self.decision_keys:
            raise ValueError(f"{type(model).__name__}.decision_keys() names no parameter; MeLU needs decision layers to adapt")
        self.learned_rates = learned_rates
        if learned_rates:
            others = tuple(k for k, _ in model.named_parameters() if k not in self.decision_keys)
            self.inner_lrs = LearnedRates(model, inner_lr, exclude=others)

    def adapted_keys(self, params: Params) -> list[str]:
        return [k for k in self.decision_keys if k in params]

    def inner_update(self, meta_params: Params) -> InnerOptimizer:
        if not self.learned_rates:
            return sgd(self.inner_lr)
        return sgd({**self.inner_lrs.as_dict(), **submodule_params(meta_params, RATES)})

    def extra_report(self, source, episodes: int, seed: int) -> dict[str, Any]:
        """Per-scenario MAE, RMSE, nDCG@1/@3 (± 95% CI over users) of this model and the baselines.

        ``source``: a :class:`~learnfast.data.cold_start.ColdStartTasks`; every eligible user of its
        part (test or val) in each of the four scenarios is one task at its shots and queries.
        Baselines are fitted on the meta-training ratings (``learnfast.recommend.baselines``).
        """
        from ..recommend.baselines import fit_baselines
        from ..recommend.report import algorithm_predictor, cold_start_report

        split = getattr(source, "split", None)
        if split is None:
            raise TypeError(f"MeLU's cold-start report needs a ColdStartTasks source; got {type(source).__name__}")
        predictors = {"this model": algorithm_predictor(self),
                      **fit_baselines(split, self.model, source.shots, source.queries, seed=seed)}
        return {"cold_start": cold_start_report(predictors, split, source.shots, source.queries, seed=seed, part=source.part)}
