"""Learned optimizers: the coordinate-wise LSTM of "Learning to learn by gradient descent by gradient descent".

Andrychowicz, Denil, Gómez, Hoffman, Pfau, Schaul, Shillingford & de Freitas (2016). NeurIPS.

The optimizer is the meta-learner: an LSTM, shared across coordinates, turns each coordinate's
gradient into its update, and is meta-trained so that the optimizee's loss summed over a run is
small (``learnfast.optim``). A task here is an optimization problem (the layout of
``learnfast.optim.problems``): ``forward`` optimizes each problem from its own initial parameters
and returns its final loss, ``meta_loss`` back-propagates through the run in truncations.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor

from ..inner import InnerOptimizer
from ..protocol import fixed_episodes
from ..tasks import Task, check_batch
from ..optim.compare import against_best, beats, compare, plot, table
from ..optim.families import build_optimizee
from ..optim.lstm import HIDDEN, OUTPUT_SCALE, P, LSTMOptimizer, learned_rule
from ..optim.momentum_lstm import MomentumLSTM
from ..optim.rates import CoordinateRates
from ..optim.unroll import OBJECTIVES, meta_gradient, run
from .base import Algorithm, MetaOutput

RULES = ("lstm", "momentum-lstm", "rates")
NAMES = {"lstm": "LSTM (learned)", "momentum-lstm": "momentum LSTM (learned)", "rates": "rates (learned)"}
TRUNCATIONS = ("all", "one")
TUNING_PROBLEMS, TUNING_SEED = 32, 271828  # baselines are tuned on these training problems
GENERALISATION = {"wider MLP (40 units)": {"hidden": (40,)}, "deeper MLP (20-20)": {"hidden": (20, 20)},
                  "ReLU instead of sigmoid": {"activation": "relu"}}


class L2O(Algorithm):
    """A learned optimizer (the paper's LSTM, or learned per-coordinate rates) meta-trained on a problem family.

    Args:
        optimizee: ``"quadratic"`` (10-d ``||W theta - y||^2``) or ``"mlp"`` (MNIST-1D classifier).
        optimizee_hidden: the MLP's hidden sizes (default ``[20]``); MLP only.
        activation: the MLP's ``"sigmoid"`` (default) or ``"relu"``; MLP only.
        batch_size: the MLP's mini-batch (default 128); MLP only.
        rule: ``"lstm"`` (the paper's optimizer), ``"momentum-lstm"`` (an LSTM that sets each
            coordinate's step size of Nesterov momentum, :class:`learnfast.optim.MomentumLSTM`) or
            ``"rates"`` (a learned SGD rate per coordinate, the learned-scalar baseline).
        lstm_hidden, preprocess_p: the LSTM's units (20) and preprocessing constant (10); LSTM rules only.
        output_scale: the paper's LSTM's output scale (0.1); ``"lstm"`` only.
        initial_rate: the starting rate of ``"rates"`` (default 0.01) and of ``"momentum-lstm"`` (required:
            the SGD+Nesterov rate tuned on the family's training problems).
        inner_steps: optimizee steps of a meta-training run (the paper: 100).
        eval_inner_steps: steps of ``forward`` in eval mode (default: ``inner_steps``).
        unroll: steps per truncation of the back-propagation (the paper: 20).
        second_order: keep the optimizee's gradient in the meta-gradient graph (the paper drops it).
        truncations: ``"all"``: ``meta_loss`` runs all of a run's truncations and sums their
            meta-gradients into one outer step; ``"one"``: it back-propagates one truncation, picked
            by the first problem's seed, after replaying the steps before it without a graph, so the
            trainer takes an outer step per truncation, as the paper does (each on fresh problems).
        objective: the meta-loss: ``"mean"`` (the paper's: the mean loss over the run's steps) or
            ``"final"`` (the score: the loss on all of a problem's examples after ``inner_steps``; the
            whole run is back-propagated, so ``unroll`` must be ``>= inner_steps``).

    Example:
        >>> from learnfast.optim import QuadraticProblems
        >>> l2o = L2O("quadratic", inner_steps=4, unroll=2)
        >>> problems = QuadraticProblems().sample(3, torch.Generator().manual_seed(0))
        >>> l2o.meta_loss(problems).loss.backward()          # meta-gradient on the LSTM's weights
        >>> l2o.eval()(problems).shape                        # each problem's final loss
        torch.Size([3, 1])

    References:
        Andrychowicz et al. (2016), https://arxiv.org/abs/1606.04474
    """

    needs_head = False
    learned_optimizer = True
    strategies = ("loop",)

    def __init__(
        self,
        optimizee: str = "quadratic",
        optimizee_hidden: Sequence[int] | None = None,
        activation: str | None = None,
        batch_size: int | None = None,
        rule: str = "lstm",
        lstm_hidden: int | None = None,
        preprocess_p: float | None = None,
        output_scale: float | None = None,
        initial_rate: float | None = None,
        inner_steps: int = 100,
        eval_inner_steps: int | None = None,
        unroll: int = 20,
        second_order: bool = False,
        truncations: str = "all",
        objective: str = "mean",
    ) -> None:
        super().__init__(loss="mse" if optimizee == "quadratic" else "cross_entropy", strategy="loop")
        if rule not in RULES:
            raise ValueError(f"unknown rule {rule!r}; choose one of {RULES}")
        if objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {objective!r}; choose one of {OBJECTIVES}")
        if objective == "final" and unroll < inner_steps:
            raise ValueError(f'objective="final" back-propagates the whole run: set unroll >= inner_steps ({inner_steps}), got {unroll}')
        if truncations not in TRUNCATIONS:
            raise ValueError(f"unknown truncations {truncations!r}; choose one of {TRUNCATIONS}")
        if inner_steps < 1 or unroll < 1 or (eval_inner_steps is not None and eval_inner_steps < 0):
            raise ValueError(f"inner_steps and unroll must be >= 1 and eval_inner_steps >= 0; got {inner_steps}, {unroll}, {eval_inner_steps}")
        given = {"lstm_hidden": lstm_hidden, "preprocess_p": preprocess_p, "output_scale": output_scale, "initial_rate": initial_rate}
        allowed = {"lstm": ("lstm_hidden", "preprocess_p", "output_scale"), "rates": ("initial_rate",),
                   "momentum-lstm": ("lstm_hidden", "preprocess_p", "initial_rate")}[rule]
        misplaced = [k for k, v in given.items() if v is not None and k not in allowed]
        if misplaced:
            raise ValueError(f"{', '.join(misplaced)} {'is not a setting' if len(misplaced) == 1 else 'are not settings'} of "
                             f"rule={rule!r} (its settings: {', '.join(allowed)}); drop {' and '.join(misplaced)}")
        self.optimizee_name = optimizee
        self.optimizee_args = {"hidden": optimizee_hidden, "activation": activation, "batch_size": batch_size}
        self.optimizee = build_optimizee(optimizee, **self.optimizee_args)  # a plain object: its weights are no meta-parameters
        self.rule_name, self.unroll, self.second_order, self.truncations = rule, unroll, second_order, truncations
        self.objective = objective
        self.inner_steps, self.eval_inner_steps = inner_steps, inner_steps if eval_inner_steps is None else eval_inner_steps
        if rule == "lstm":
            self.network = LSTMOptimizer(lstm_hidden or HIDDEN, p=preprocess_p or P, output_scale=output_scale or OUTPUT_SCALE)
        elif rule == "momentum-lstm":
            if initial_rate is None:
                raise ValueError('rule="momentum-lstm" needs initial_rate: the SGD+Nesterov rate tuned on the family\'s training '
                                 'problems (the "lr" column of `learnfast eval` of any l2o checkpoint of the family)')
            self.network = MomentumLSTM(initial_rate, lstm_hidden or HIDDEN, p=preprocess_p or P)
        else:
            self.network = CoordinateRates(self.optimizee.model, 0.01 if initial_rate is None else initial_rate)

    def rule(self) -> InnerOptimizer:
        """The current update rule as an ``(init, update)`` pair (differentiable w.r.t. the network)."""
        return self.network.rule() if self.rule_name == "rates" else learned_rule(self.network)

    def forward(self, batch: Task, inner_steps: int | None = None) -> Tensor:
        """Each problem's loss on all its examples after ``inner_steps`` steps of the learned rule: ``(B, 1)``."""
        check_batch(batch)
        steps = self.default_steps() if inner_steps is None else inner_steps
        return run(self.optimizee, batch, self.rule(), steps, record=False)[-1].unsqueeze(1)

    def meta_loss(self, batch: Task, generator: torch.Generator | None = None) -> MetaOutput:
        """The truncated meta-gradient of one run of ``inner_steps`` steps (``truncations``: all of its
        truncations summed, or one). Deterministic given the batch.

        The value is the mean mini-batch loss over problems and the back-propagated steps;
        ``predictions`` are each problem's mini-batch loss at the last of them ``(B, 1)``
        (``objective="final"``: both are the loss on all of a problem's examples at the end).
        """
        check_batch(batch)
        meta_params = self.meta_params()
        only = None
        if self.truncations == "one":  # the seeds are uniform draws, so the truncation is too
            only = int(batch.query_x[0, 0]) % -(-self.inner_steps // self.unroll)
        result = meta_gradient(self.optimizee, batch, self.rule(), meta_params, self.inner_steps, self.unroll,
                               self.second_order, only, self.objective)
        surrogate = sum(((meta_params[k] * g).sum() for k, g in result.grads.items()), result.loss.new_zeros(()))
        return MetaOutput(surrogate - surrogate.detach() + result.loss, result.final.unsqueeze(1))

    def extra_report(self, source, episodes: int, seed: int) -> dict[str, Any]:
        """The comparison with tuned SGD, SGD+Nesterov, RMSprop and Adam on the evaluated problems (``episodes``
        of ``source``, seed ``seed``) after ``inner_steps`` and twice as many steps; a PNG of the loss curves
        in the working directory; for the MLP, the same table for the paper's generalisation tests."""
        steps, horizon = 2 * self.inner_steps, self.inner_steps
        problems = next(fixed_episodes(source, episodes, seed, episodes))
        tuning = next(fixed_episodes(source.for_part("train"), TUNING_PROBLEMS, TUNING_SEED, TUNING_PROBLEMS))
        name = NAMES[self.rule_name]
        with torch.no_grad():
            curves = compare(self.optimizee, self.rule(), name, problems, tuning, steps, horizon)
        png = plot(curves, Path(f"l2o-{self.optimizee_name}-{self.rule_name}-curves.png"),
                   f"{self.optimizee_name}: {episodes} held-out problems")
        report: dict[str, Any] = {
            "comparison": "\n" + table(curves, (horizon, steps)),
            "curves_png": str(png),
            "beats_tuned_adam": {f"{s} steps": beats(curves, s) for s in (horizon, steps)},
            "against_best_baseline": {f"{s} steps": against_best(curves, s) for s in (horizon, steps)},
        }
        if self.optimizee_name == "mlp":
            report["generalisation"] = self._generalisation(problems, tuning, steps, horizon)
        return report

    def _generalisation(self, problems: Task, tuning: Task, steps: int, horizon: int) -> str:
        """The comparison table again for optimizees the rule never trained on (Andrychowicz et al. 2016, fig. 5)."""
        if self.rule_name == "rates":
            return "(per-coordinate rates are shaped like the training optimizee: they do not transfer)"
        parts = []
        for title, change in GENERALISATION.items():
            optimizee = build_optimizee("mlp", **{**self.optimizee_args, **change})
            with torch.no_grad():
                curves = compare(optimizee, self.rule(), NAMES[self.rule_name], problems, tuning, steps, horizon)
            parts.append(f"{title}:\n{table(curves, (horizon, steps))}")
        return "\n" + "\n\n".join(parts)

