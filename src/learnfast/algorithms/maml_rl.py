"""MAML for reinforcement learning (Finn, Abbeel & Levine 2017, section 5.3).

"Model-Agnostic Meta-Learning for Fast Adaptation of Deep Networks", ICML 2017.

A task is an environment with a sampled goal (``learnfast.rl``). The inner update is one step of
vanilla policy gradient: ``N`` trajectories from the current policy, REINFORCE with rllab's linear
feature baseline, through the shared inner loop ``learnfast.inner.adapt`` (the policy is a plain
``nn.Module``, its adapted weights a ``Params`` dict). The outer objective is the same policy-gradient
surrogate on fresh trajectories of the adapted policy, differentiated exactly through the inner step
(second order; ``first_order=True`` drops the inner step's Hessian). Test time: ``eval_inner_steps``
steps, fresh trajectories before each; every step after the first uses ``later_steps_scale * inner_lr``
(the paper's evaluation halves the step size after the first step: ``later_steps_scale = 0.5``).
Like the authors' code, the meta-gradient leaves out how the
pre-update trajectories' distribution depends on the meta-parameters.

Outer objective: ``outer = "vpg"`` (default) is the trainer's optimizer (Adam) on this vanilla
policy-gradient surrogate, one step per sampled meta-batch: a departure from the paper's TRPO.
``outer = "promp"`` is ProMP (Rothfuss, Lee, Clavera, Asfour & Abbeel 2019, "ProMP: Proximal
Meta-Policy Search"): the inner step on the likelihood-ratio objective ``-mean(pi / pi_old * A)``
(its LVC estimator, whose Hessian keeps the score-function term), the outer on PPO's clipped
surrogate of the adapted policy, and ``outer_steps`` Adam steps (ProMP: 5) on each sampled
meta-batch, re-adapting from the current weights on the same trajectories (the ratios correct for
the weights having moved). Departure from ProMP: no KL penalty on the inner step (its default
weight is 5e-4).

The paper's baselines are the same class: ``inner_steps = 0`` in training is the policy pretrained on
all tasks (then fine-tuned with the same test-time steps); ``oracle = true`` gives the policy the task
parameters as extra inputs; the random initialisation is reported by ``extra_report``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .._types import Params
from ..functional import forward_with
from ..inner import InnerOptimizer, adapt, sgd
from ..protocol import fixed_episodes
from ..rl import task_family, task_params, task_seeds
from ..rl.plot import by_steps, plot_adaptation, step_results
from ..rl.policy import HIDDEN, GaussianMLP
from ..rl.returns import advantages, clipped_loss, likelihood_ratio_loss, pack, pack_ratio, reinforce_loss
from ..rl.sampler import Trajectories, rollout
from ..rl.simulators import require
from ..tasks import Task, check_batch
from .base import Algorithm, MetaOutput, submodule_params

RANDOM_INIT_SEED = 2024  # the random-initialisation baseline's policy
OUTER = ("vpg", "promp")
PROMP_STEPS, PROMP_CLIP = 5, 0.3  # ProMP's num_promp_steps and clip_eps (its run scripts' defaults)


class MAMLRL(Algorithm):
    """MAML with a policy-gradient inner step on a meta-RL task family; forward returns each task's average return.

    Args:
        env: the task family (``learnfast.rl.FAMILIES``; the config's ``[data] dataset``).
        hidden: units of the policy's two hidden layers (the config's ``[model] hidden``; the paper: 100).
        inner_lr: the inner policy-gradient step size (the paper: 0.1).
        inner_steps: inner steps in training (the paper: 1; 0 trains the pretrained baseline).
        eval_inner_steps: test-time steps (the paper's figures: 3).
        trajectories: trajectories per task and inner step (default: the family's, 20 for nav2d, 40 for locomotion).
        gamma: discount of the returns the baseline and advantages use (rllab: 0.99).
        first_order: drop the inner step's second-order term.
        oracle: append the task parameters to the policy's observations (the oracle baseline).
        later_steps_scale: the step size of every inner step after the first is ``later_steps_scale * inner_lr``
            (the paper's evaluation: 0.5, "halving the learning rate after the first gradient step"; 1 keeps it).
        outer: ``"vpg"`` (vanilla policy-gradient surrogate, one step per meta-batch) or ``"promp"`` (above).
        outer_steps: ProMP's outer steps per sampled meta-batch (the trainer reuses the batch; ProMP: 5).
        clip: ProMP's clipping range of the likelihood ratio (default 0.3, ProMP's).

    Shapes: ``forward(batch (B tasks in the learnfast.rl.tasks layout)) -> (B, 1)`` average undiscounted
    return of the task's trajectories after the steps.

    References:
        Finn, Abbeel & Levine (2017), https://arxiv.org/abs/1703.03400
    """

    needs_head = False
    reinforcement = True
    strategies = ("loop",)
    eval_batch_size = 40  # tasks evaluated together: their environments and policies step as one batch

    def __init__(self, env: str = "nav2d", hidden: int = HIDDEN, inner_lr: float = 0.1, inner_steps: int = 1,
                 eval_inner_steps: int = 3, trajectories: int | None = None, gamma: float = 0.99,
                 first_order: bool = False, oracle: bool = False, later_steps_scale: float = 1.0, outer: str = "vpg",
                 outer_steps: int | None = None, clip: float | None = None) -> None:
        super().__init__(loss="mse", strategy="loop")  # the loss is the policy gradient's; "mse" is never used
        if inner_steps < 0 or eval_inner_steps < 0:
            raise ValueError(f"inner_steps and eval_inner_steps must be >= 0, got {inner_steps} and {eval_inner_steps}")
        if not 0.0 < gamma <= 1.0:
            raise ValueError(f"gamma must lie in (0, 1], got {gamma}")
        if trajectories is not None and trajectories < 2:
            raise ValueError(f"trajectories must be >= 2 (the baseline and advantages need several), got {trajectories}")
        if not later_steps_scale > 0.0:
            raise ValueError(f"later_steps_scale must be > 0, got {later_steps_scale}")
        if outer not in OUTER:
            raise ValueError(f"unknown outer {outer!r}; choose one of {OUTER}")
        if outer == "vpg" and (outer_steps is not None or clip is not None):
            raise ValueError('outer_steps and clip are settings of outer = "promp"; drop them or set outer = "promp"')
        outer_steps = PROMP_STEPS if outer_steps is None else outer_steps
        clip = PROMP_CLIP if clip is None else clip
        if outer == "promp" and (outer_steps < 1 or not 0.0 < clip < 1.0):
            raise ValueError(f"ProMP needs outer_steps >= 1 and 0 < clip < 1, got {outer_steps} and {clip}")
        if first_order and inner_steps == 0:
            raise ValueError("first_order changes how the meta-gradient goes through inner steps; with inner_steps = 0 "
                             "there are none: drop first_order")
        self.family = task_family(env)
        for module in self.family.requires:  # a missing simulator fails here, not at the first meta-batch
            require(module, env)
        self.env, self.hidden, self.inner_lr, self.gamma, self.oracle = env, hidden, inner_lr, gamma, oracle
        self.inner_steps, self.eval_inner_steps, self.later_steps_scale = inner_steps, eval_inner_steps, later_steps_scale
        self.trajectories = self.family.trajectories if trajectories is None else trajectories
        self.memory = "first-order" if first_order else "second-order"
        self.outer, self.clip = outer, clip
        self.steps_per_batch = outer_steps if outer == "promp" else 1
        self._sampled: tuple[Task, list[Trajectories], list[Tensor]] | None = None  # ProMP: the batch it sampled last
        self.model = self.new_policy()

    def new_policy(self) -> GaussianMLP:
        """A freshly initialised policy of this algorithm's shape (from the global torch seed)."""
        extra = self.family.param_dim if self.oracle else 0
        return GaussianMLP(self.family.obs_dim + extra, self.family.action_dim, (self.hidden, self.hidden))

    def step_rule(self, step: int) -> InnerOptimizer:
        """The SGD rule of inner step ``step`` (from 0): ``inner_lr`` first, ``later_steps_scale * inner_lr`` after."""
        return sgd(self.inner_lr * (self.later_steps_scale if step > 0 else 1.0))

    def rounds(self, batch: Task, steps: int, params: Params, memory: str,
               timer: dict[str, float] | None = None, sample_last: bool = True) -> tuple[list[Params], list[Trajectories]]:
        """Samples trajectories, takes an inner step, samples again, ``steps`` times from ``params``.

        Returns each task's adapted parameters and the ``steps + 1`` rounds of trajectories (round
        ``k`` from the policy after ``k`` steps; ``sample_last=False``: the first ``steps``, the adapted
        policies are not rolled out); the parameters are differentiable w.r.t. ``params`` as ``memory``
        says (``learnfast.inner``).
        """
        goals, seeds = task_params(batch), task_seeds(batch)
        envs = self.family.make_envs(goals, self.trajectories)
        fast, rounds = [params] * batch.batch_size, []
        try:
            for step in range(steps + 1 if sample_last else steps):
                stacked = {k: torch.stack([f[k] for f in fast]) for k in params}
                rounds.append(rollout(envs, self.model, stacked, seeds, step, self.family.horizon,
                                      goals if self.oracle else None, timer))
                if step == steps:
                    break  # the adapted policies' round
                obs, actions = rounds[-1].observations, rounds[-1].actions
                adv = advantages(obs, rounds[-1].rewards, self.gamma)
                fast = [adapt(self.model, fast[i], obs[i].flatten(0, 1), pack(actions[i], adv[i]).flatten(0, 1), reinforce_loss,
                              steps=1, update=self.step_rule(step), memory=memory) for i in range(batch.batch_size)]
        finally:
            envs.close()
        return fast, rounds

    def adaptation_curves(self, batch: Task, steps: int, params: Params | None = None) -> dict[str, Tensor]:
        """Each task's average ``"return"`` after 0, 1, ..., ``steps`` inner steps, ``(B, steps + 1)``, and, for
        families that record reaching the goal (Meta-World), the fraction of its trajectories that did (``"success"``).

        ``params``: the policy's starting parameters (default: the meta-parameters)."""
        check_batch(batch)
        params = submodule_params(self.meta_params()) if params is None else params
        with torch.no_grad():
            _, rounds = self.rounds(batch, steps, {k: v.detach() for k, v in params.items()}, "first-order")
        curves = {"return": torch.stack([r.returns() for r in rounds], dim=1)}
        if rounds[0].successes is not None:
            curves["success"] = torch.stack([r.success_rates() for r in rounds], dim=1)
        return curves

    def adaptation_curve(self, batch: Task, steps: int, params: Params | None = None) -> Tensor:
        """Each task's average return after 0, 1, ..., ``steps`` inner steps: ``(B, steps + 1)``."""
        return self.adaptation_curves(batch, steps, params)["return"]

    def forward(self, batch: Task, inner_steps: int | None = None) -> Tensor:
        """Each task's average return after ``inner_steps`` (default: the mode's) adaptation steps: ``(B, 1)``."""
        steps = self.default_steps() if inner_steps is None else inner_steps
        return self.adaptation_curve(batch, steps)[:, -1:]

    def meta_loss(self, batch: Task, generator: torch.Generator | None = None) -> MetaOutput:
        """The policy-gradient surrogate of the adapted policies, averaged over tasks; value = minus their mean return.

        Deterministic given the batch (the task seeds draw every trajectory); ``generator`` is not used.
        ``predictions``: each task's average return after the inner steps ``(B, 1)``.
        """
        check_batch(batch)
        if self.outer == "promp":
            return self._promp_loss(batch)
        fast, rounds = self.rounds(batch, self.inner_steps, submodule_params(self.meta_params()), self.memory)
        last = rounds[-1]
        adv = advantages(last.observations, last.rewards, self.gamma)
        surrogate = torch.stack([reinforce_loss(forward_with(self.model, fast[i], last.observations[i]), pack(last.actions[i], adv[i]))
                                 for i in range(batch.batch_size)]).mean()
        returns = last.returns()
        return MetaOutput(surrogate - surrogate.detach() - returns.mean(), returns.unsqueeze(1))

    def _promp_loss(self, batch: Task) -> MetaOutput:
        """ProMP's meta-loss: the batch's trajectories are sampled on its first call and reused while the trainer
        passes the same batch (``steps_per_batch`` calls); every call re-adapts from the current weights."""
        if self._sampled is None or self._sampled[0] is not batch:
            theta = {k: v.detach() for k, v in submodule_params(self.meta_params()).items()}
            with torch.no_grad():
                _, rounds = self.rounds(batch, self.inner_steps, theta, "first-order")
            self._sampled = (batch, rounds, [advantages(r.observations, r.rewards, self.gamma) for r in rounds])
        _, rounds, adv = self._sampled
        fast = [submodule_params(self.meta_params())] * batch.batch_size
        for step, (r, a) in enumerate(zip(rounds[:-1], adv[:-1])):
            fast = [adapt(self.model, fast[i], r.observations[i].flatten(0, 1), pack_ratio(r.actions[i], a[i], r.log_probs[i]).flatten(0, 1),
                          likelihood_ratio_loss, steps=1, update=self.step_rule(step), memory=self.memory) for i in range(batch.batch_size)]
        last, a = rounds[-1], adv[-1]
        surrogate = torch.stack([clipped_loss(forward_with(self.model, fast[i], last.observations[i]),
                                              pack_ratio(last.actions[i], a[i], last.log_probs[i]), self.clip)
                                 for i in range(batch.batch_size)]).mean()
        returns = last.returns()  # of the policies that sampled the batch
        return MetaOutput(surrogate - surrogate.detach() - returns.mean(), returns.unsqueeze(1))

    def role(self) -> str:
        """The paper's name for what this checkpoint is: MAML, pretrained or oracle."""
        return "oracle" if self.oracle else ("MAML" if self.inner_steps > 0 else "pretrained")

    def extra_report(self, source, episodes: int, seed: int) -> dict[str, Any]:
        """Mean return ± 95% CI after 0..``eval_inner_steps`` steps on the ``episodes`` fixed tasks, for this policy and
        for a randomly initialised one, and a PNG of both curves (in the working directory); for families that record
        reaching the goal (Meta-World), the success rate after each number of steps too."""
        tasks = next(fixed_episodes(source, episodes, seed, episodes))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_INIT_SEED)
            fresh = {k: v for k, v in self.new_policy().named_parameters()}
        curves = {self.role(): self.adaptation_curves(tasks, self.eval_inner_steps),
                  "random": self.adaptation_curves(tasks, self.eval_inner_steps, fresh)}
        results = step_results(curves, "return")
        png = plot_adaptation(results, Path(f"maml-rl-{self.env}-{self.role().lower()}-adaptation.png"),
                              f"{self.env}: {episodes} held-out tasks")
        report = {
            "returns_by_steps": by_steps(results),
            "adaptation": "\n" + "\n".join(f"{name:>10}: " + "  ".join(f"{k} steps {r.mean:8.2f} ± {r.ci95:.2f}" for k, r in enumerate(rs))
                                           for name, rs in results.items()),
            "adaptation_png": str(png),
        }
        if "success" in curves[self.role()]:  # Meta-World: the fraction of trajectories that reached the goal
            success = step_results(curves, "success")
            report["success_by_steps"] = by_steps(success)
            report["success"] = "\n" + "\n".join(f"{name:>10}: " + "  ".join(f"{k} steps {100 * r.mean:5.1f} ± {100 * r.ci95:.1f} %"
                                                                              for k, r in enumerate(rs)) for name, rs in success.items())
        return report

