"""Reptile: move the initialisation towards the weights that training on each task reaches.

Nichol, Achiam & Schulman (2018). On First-Order Meta-Learning Algorithms. arXiv:1803.02999.

For each task of a meta-batch, Reptile runs a few SGD (or Adam) steps from the current initialisation
``theta`` on the task's data and reaches ``phi_task``; it then moves ``theta`` towards the mean of
the ``phi_task``. The difference ``theta - mean(phi)`` acts as a gradient: with outer SGD of step
``epsilon`` it is the paper's update ``theta + epsilon (mean(phi) - theta)``, and it can be fed to
Adam like any gradient. No derivative flows through the inner steps, so Reptile costs what plain
training costs and needs no support/query split while meta-training; at test time it adapts to the
support set and predicts the query set like MAML.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.func import vmap

from .._types import Params
from ..functional import Mirror, detach, forward_with
from ..inner import InnerOptimizer, adapt, adam, inner_loop, minibatch_order, sgd
from ..tasks import Task, check_batch, task_at
from .base import Algorithm, MetaOutput, inner_steps_pair, query_loss, submodule_params

PREFIX = "model."
INNER_OPTIMIZERS = ("sgd", "adam")
INNER_STATES = ("per-task", "carried")


class Reptile(Algorithm):
    """Reptile over any backbone whose output layer has ``ways`` units (or the regression width).

    Meta-training "trains on the task": ``inner_steps`` steps on the support and query sets
    together, full-batch or, with ``inner_batch``, on mini-batches of that many examples drawn
    without replacement within an epoch (the paper: 5 Adam steps on mini-batches of 10 from 10
    examples per class). ``meta_loss`` returns a loss whose
    gradient with respect to every meta-parameter is exactly ``theta - mean_over_tasks(phi_task)``
    and whose value is the query loss after adapting to the support set alone, the quantity a
    test episode measures (one extra inner loop on the support set per task; ``log_episode=False``
    logs the trained weights' fit to the query examples instead).

    Args:
        model: the network to meta-learn (a plain ``nn.Module``).
        inner_lr: inner-loop SGD step size.
        inner_steps: SGD steps per task while meta-training.
        eval_inner_steps: SGD steps on the support set at test time (default: ``inner_steps``).
        loss: ``"cross_entropy"`` (classification) or ``"mse"`` (regression).
        strategy: meta-batch execution, ``"loop"`` (reference) or ``"vmap"`` (the per-task inner
            loops run under ``vmap``; they are first order, so the result is the loop's); the
            others of ``STRATEGIES`` are an error.
        inner_optimizer: ``"sgd"``, or ``"adam"`` as in the paper (``betas=(0, 0.999)``, step size
            ``inner_lr``; its moments start at zero for every task and every test episode).
        inner_batch: examples per inner step while meta-training (default: all of the task's);
            the mini-batches are drawn from ``meta_loss``'s ``generator``.
        eval_inner_batch: examples per inner step at test time (default: the whole support set);
            smaller batches take a fixed order (``inner.minibatch_order`` without a generator).
        inner_state: ``"per-task"``: the inner optimizer starts afresh on every task; ``"carried"`` (the
            authors' code, whose TensorFlow Adam keeps its moments while the weights are reset): Adam's
            moments and step count continue from task to task in training, and test-time adaptation
            starts from them without changing them. Fresh Adam moments make each first step a
            sign step of size ``inner_lr`` on every weight, however small its gradient.
        log_episode: ``meta_loss``'s value and predictions are a test episode's (the query set after
            adapting to the support set alone: one more inner loop per task, about half the cost of
            a meta-batch with the paper's recipe). ``False``: the query predictions of each task's
            trained weights ``phi`` (which saw those examples), a training-fit figure at no extra cost.
        bn: BatchNorm policy at test time (``learnfast.batchnorm``): ``"transductive"`` (the
            query set normalised with its own batch statistics, the paper's transductive setting)
            or ``"support"`` (with the support set's, non-transductive). ``"per-step"`` does not
            apply: Reptile's pseudo-gradient reaches only the adapted parameters.

    Example:
        >>> reptile = Reptile(Conv4(out_features=5, strided=True), inner_lr=0.1, inner_steps=5)
        >>> reptile.meta_loss(batch).loss.backward()    # p.grad == theta - mean(phi) for every p

    References:
        Nichol et al. (2018), https://arxiv.org/abs/1803.02999
    """

    strategies = ("loop", "vmap")

    def __init__(
        self,
        model: nn.Module,
        inner_lr: float = 0.1,
        inner_steps: int = 5,
        eval_inner_steps: int | None = None,
        loss: str = "cross_entropy",
        strategy: str = "loop",
        inner_optimizer: str = "sgd",
        inner_batch: int | None = None,
        eval_inner_batch: int | None = None,
        log_episode: bool = True,
        inner_state: str = "per-task",
        bn: str = "transductive",
    ) -> None:
        super().__init__(loss=loss, strategy=strategy)
        if inner_optimizer not in INNER_OPTIMIZERS:
            raise ValueError(f"unknown inner_optimizer {inner_optimizer!r}; choose one of {INNER_OPTIMIZERS}")
        if bn == "per-step":
            raise ValueError("Reptile cannot use bn='per-step': its pseudo-gradient theta - mean(phi) reaches only the "
                             "adapted parameters, so per-step copies would never learn; use bn='transductive' or 'support'")
        for name, size in (("inner_batch", inner_batch), ("eval_inner_batch", eval_inner_batch)):
            if size is not None and size < 1:
                raise ValueError(f"{name} must be >= 1 (or None: every example each step), got {size}")
        self.model = model
        self.inner_lr, self.inner_optimizer = inner_lr, inner_optimizer
        self.inner_batch, self.eval_inner_batch, self.log_episode = inner_batch, eval_inner_batch, log_episode
        if inner_state not in INNER_STATES:
            raise ValueError(f"unknown inner_state {inner_state!r}; choose one of {INNER_STATES}")
        if inner_state == "carried" and (inner_optimizer != "adam" or strategy != "loop"):
            raise ValueError("inner_state='carried' carries Adam's moments from one task to the next, so it needs "
                             "inner_optimizer='adam' and strategy='loop' (tasks one after another)")
        self.inner_state = inner_state
        if inner_state == "carried":  # Adam's moments and step count, kept across tasks and saved in checkpoints
            zeros = {k: torch.zeros_like(v) for k, v in model.named_parameters() if v.requires_grad}
            self.adam_m, self.adam_v = Mirror(zeros, buffers=True), Mirror({k: v.clone() for k, v in zeros.items()}, buffers=True)
            self.register_buffer("adam_steps", torch.zeros((), dtype=torch.long))
        self.inner_steps, self.eval_inner_steps = inner_steps_pair(inner_steps, eval_inner_steps)
        self.inner = inner_loop("second-order", False, bn, strategy)

    def update_rule(self, carried: tuple[Params, Params, int] | None = None) -> InnerOptimizer:
        """The inner optimizer; ``carried = (m, v, steps)`` continues Adam from that state (``inner_state="carried"``)."""
        if self.inner_optimizer == "sgd":
            return sgd(self.inner_lr)
        if carried is None and self.inner_state == "carried":
            carried = (self.adam_m.as_dict(), self.adam_v.as_dict(), int(self.adam_steps))
        if carried is None:
            return adam(self.inner_lr, betas=(0.0, 0.999))
        return adam(self.inner_lr, betas=(0.0, 0.999), moments=carried[:2], steps_taken=carried[2])

    def task_predict(self, meta_params: Params, task: Task, inner_steps: int) -> Tensor:
        n, size = task.support_x.shape[0], self.eval_inner_batch
        batches = None if size is None or size >= n else minibatch_order(n, size, inner_steps, None)
        return self.inner.predict(self.model, submodule_params(meta_params), task, self.loss_fn, inner_steps,
                                  self.update_rule(), batches=batches)

    def train_on_task(self, theta: Params, x: Tensor, y: Tensor, steps: int, batches: Tensor | None = None) -> Params:
        """``phi``: ``steps`` inner-optimizer steps from ``theta`` (detached) on one task's ``x (n, ...)``, ``y (n, ...)``
        (on the rows ``batches[k]`` at step ``k``, if given)."""
        return adapt(self.model, theta, x, y, self.loss_fn, steps=steps, update=self.update_rule(), memory="first-order",
                     batches=batches)

    def meta_loss(self, batch: Task, generator: torch.Generator | None = None) -> MetaOutput:
        """Surrogate whose gradient is ``theta - mean(phi)``; value and predictions as a test episode sees them.

        ``generator`` draws the inner mini-batches (``inner_batch``); default: a fresh one seeded 0.
        """
        check_batch(batch)
        steps = self.default_steps()
        meta_params = self.meta_params()
        theta = detach(submodule_params(meta_params))
        x = torch.cat([batch.support_x, batch.query_x], dim=1)  # (B, S+Q, ...)
        y = torch.cat([batch.support_y, batch.query_y], dim=1)
        batches = None
        if self.inner_batch is not None:
            generator = torch.Generator().manual_seed(0) if generator is None else generator
            batches = torch.stack([minibatch_order(x.shape[1], self.inner_batch, steps, generator)
                                   for _ in range(batch.batch_size)])  # (B, steps, inner_batch)
        if self.inner_state == "carried":  # tasks one after another, each continuing Adam where the last one left it
            m, v, t = self.adam_m.as_dict(), self.adam_v.as_dict(), int(self.adam_steps)
            phis = []
            for i in range(batch.batch_size):
                phi_i, (m, v) = adapt(self.model, theta, x[i], y[i], self.loss_fn, steps=steps, update=self.update_rule((m, v, t)),
                                      memory="first-order", batches=None if batches is None else batches[i], return_state=True)
                phis.append(phi_i)
                m, v, t = detach(m), detach(v), t + steps
            with torch.no_grad():
                for mine, new in ((self.adam_m.as_dict(), m), (self.adam_v.as_dict(), v)):
                    for k, buffer in mine.items():
                        buffer.copy_(new[k])
                self.adam_steps.fill_(t)
            phi = {k: torch.stack([p[k] for p in phis]) for k in theta}
        elif self.strategy == "vmap":
            if batches is None:
                phi = vmap(lambda xi, yi: self.train_on_task(theta, xi, yi, steps))(x, y)  # each (B, *shape)
            else:
                phi = vmap(lambda xi, yi, bi: self.train_on_task(theta, xi, yi, steps, bi))(x, y, batches)
        else:
            phis = [self.train_on_task(theta, x[i], y[i], steps, None if batches is None else batches[i])
                    for i in range(batch.batch_size)]
            phi = {k: torch.stack([p[k] for p in phis]) for k in theta}  # each (B, *shape)
        phi_mean = {k: v.mean(0) for k, v in phi.items()}
        # d surrogate / d theta = theta - mean(phi), exactly; the value is replaced by the real loss
        surrogate = sum((p * (p.detach() - phi_mean[k[len(PREFIX):]])).sum() for k, p in meta_params.items())
        if not self.training_figures:  # nobody reads them this iteration: skip the extra forward passes
            return MetaOutput(surrogate - surrogate.detach(), None)
        with torch.no_grad():
            if self.log_episode:
                predictions = self(batch, steps)  # (B, Q, ...): adapted to the support set only
            else:  # the task-trained weights on the task's own query examples: a training-fit figure
                predictions = torch.stack([forward_with(self.model, {k: v[i] for k, v in phi.items()}, batch.query_x[i])
                                           for i in range(batch.batch_size)])
            real_loss = query_loss(self.loss_fn, predictions, batch.query_y)
        return MetaOutput(surrogate - surrogate.detach() + real_loss, predictions)
