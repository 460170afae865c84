"""Reptile on meta-RL task families: move the policy's initialisation towards the policies that a few
policy-gradient steps on each task reach.

Reptile (Nichol, Achiam & Schulman 2018, "On First-Order Meta-Learning Algorithms") applied to the
MAML paper's reinforcement-learning tasks (``learnfast.rl``). The inner loop is MAML-RL's
(``MAMLRL.rounds``): ``inner_steps`` steps of vanilla policy gradient (REINFORCE with the linear
feature baseline), each on fresh trajectories of the current policy, the step size ``inner_lr`` then
``later_steps_scale * inner_lr``, exactly the test-time adaptation. The outer update treats
``theta - mean_over_tasks(phi_task)`` as the gradient (the trainer's optimizer takes it: Adam, or SGD
of step ``epsilon`` for the paper's ``theta + epsilon (mean(phi) - theta)``); nothing is differentiated
through the inner steps.

Departure: the Reptile paper has no reinforcement-learning experiment; this is its rule on the MAML
paper's tasks, trained and tested with the MAML configs' policy, step sizes and trajectories.
With ``inner_steps = 1`` the pseudo-gradient is ``inner_lr`` times the policy gradient at ``theta``:
the pretrained baseline's training (the Reptile paper's observation that k = 1 is joint training).
"""
from __future__ import annotations

import torch

from ..rl.policy import HIDDEN
from ..tasks import Task, check_batch
from .base import MetaOutput, submodule_params
from .maml_rl import MAMLRL


class ReptileRL(MAMLRL):
    """Reptile's outer rule over MAML-RL's policy-gradient inner loop; forward returns each task's average return.

    Args:
        env: the task family (``learnfast.rl.FAMILIES``; the config's ``[data] dataset``).
        hidden: units of the policy's two hidden layers (the config's ``[model] hidden``).
        inner_lr: the inner policy-gradient step size.
        inner_steps: policy-gradient steps per task in training (>= 1; each samples fresh trajectories).
        eval_inner_steps: test-time steps.
        trajectories: trajectories per task and inner step (default: the family's).
        gamma: discount of the returns the baseline and advantages use.
        later_steps_scale: every step after the first, in training and at test time, uses ``later_steps_scale * inner_lr``.

    ``meta_loss`` returns a loss whose gradient with respect to every policy parameter is exactly
    ``theta - mean_over_tasks(phi_task)`` and whose value is minus the tasks' average return over the
    trajectories the inner steps sampled.

    References:
        Nichol et al. (2018), https://arxiv.org/abs/1803.02999
    """

    def __init__(self, env: str = "nav2d", hidden: int = HIDDEN, inner_lr: float = 0.1, inner_steps: int = 3,
                 eval_inner_steps: int = 3, trajectories: int | None = None, gamma: float = 0.99,
                 later_steps_scale: float = 1.0) -> None:
        if inner_steps < 1:
            raise ValueError(f"Reptile moves towards the weights that inner steps reach: inner_steps must be >= 1, got {inner_steps} "
                             "(the pretrained baseline is algorithm maml-rl with inner_steps = 0)")
        super().__init__(env, hidden, inner_lr, inner_steps, eval_inner_steps, trajectories, gamma,
                         first_order=True, later_steps_scale=later_steps_scale)

    def meta_loss(self, batch: Task, generator: torch.Generator | None = None) -> MetaOutput:
        """``theta - mean(phi)`` as the gradient; deterministic given the batch (``generator`` is not used).

        ``predictions``: each task's average return over the trajectories its inner steps sampled (after
        0 .. ``inner_steps - 1`` steps) ``(B, 1)``; the adapted policies are not rolled out (that would
        cost one more round of samples per meta-batch), validation measures them.
        """
        check_batch(batch)
        theta = submodule_params(self.meta_params())
        with torch.no_grad():
            fast, rounds = self.rounds(batch, self.inner_steps, {k: v.detach() for k, v in theta.items()}, "first-order",
                                       sample_last=False)
            target = {k: torch.stack([f[k] for f in fast]).mean(0) for k in theta}
        pseudo = sum((v * (v.detach() - target[k])).sum() for k, v in theta.items())
        returns = torch.stack([r.returns() for r in rounds], dim=1).mean(1)
        return MetaOutput(pseudo - pseudo.detach() - returns.mean(), returns.unsqueeze(1))

    def role(self) -> str:
        """The name this checkpoint's curve carries in reports and figures."""
        return "Reptile"
