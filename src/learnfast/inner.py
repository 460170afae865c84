"""``adapt``: the one differentiable inner loop shared by every gradient-based algorithm.

MAML, first-order MAML, ANIL, Meta-SGD, iMAML and Reptile differ only in the update rule, which
parameters adapt, and how the meta-gradient is kept (``memory``). The loop is written with
``torch.func.grad`` so it runs unchanged eagerly (meta-gradients flow to the caller's autograd
graph) and under ``torch.func.vmap`` over tasks.

Update rules are optax-style ``(init, update)`` pairs of pure functions: ``init(params) -> state``
and ``update(grads, state, params, step) -> (new_params, new_state)``; ``sgd`` has no state,
``adam`` carries its moments. Nothing is done in place, so the second-order graph runs through
every step.

Memory options (``memory=``), for a meta-gradient of a loss computed from the returned params:

``"second-order"``  the exact gradient through every inner step; the graph of every step is kept.
``"first-order"``   inner gradients are constants (FOMAML); ``d phi/d theta`` is the identity.
``"checkpoint"``    exact second order with each inner step under activation checkpointing: only
                    the parameters between steps are stored, a step's graph is rebuilt during
                    backward. Needs the eager ``loop`` strategy (``torch.utils.checkpoint`` cannot
                    run under ``torch.func`` transforms).
``"implicit"``      iMAML: the loop solves ``L_support + lam/2 ||phi - theta||^2`` with no graph
                    at all; backward solves ``(I + H/lam) v = g`` by conjugate gradient
                    (``learnfast.implicit``). Memory does not depend on ``steps``.

Inner mini-batches (``batches=``, Reptile's recipe): step ``k`` takes the support rows
``batches[k]``; ``minibatch_order`` draws them, seeded, without replacement within an epoch over
the task's examples (an epoch is one random permutation; a mini-batch may straddle two).
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, NamedTuple, Sequence

import torch
from torch import Tensor, nn
from torch.func import grad, grad_and_value
from torch.utils.checkpoint import checkpoint

from ._types import LossFn, Params
from .batchnorm import at_step, check_bn, predict_query
from .functional import detach, forward_with, sgd_step
from .implicit import Implicit, check_implicit, implicit_solution, proximal
from .tasks import Task

State = Any
"""An update rule's state: a pytree of tensors (``()`` for stateless rules)."""


def minibatch_order(n: int, batch_size: int, steps: int, generator: torch.Generator | None) -> Tensor:
    """Row indices ``(steps, batch_size)`` of ``steps`` mini-batches over ``n`` examples.

    The rows are consecutive epochs, each a fresh permutation of ``range(n)`` drawn from
    ``generator``, cut into mini-batches: every example appears once per epoch, and a mini-batch
    may run over into the next epoch (as the Reptile authors' ``_mini_batches`` does).
    ``generator=None``: fixed permutations (a multiplicative hash, no random op, so it also runs
    under ``vmap``), for test-time adaptation that must not depend on a seed.
    """
    if batch_size < 1 or n < 1:
        raise ValueError(f"mini-batches need batch_size >= 1 and examples >= 1, got batch_size={batch_size}, n={n}")
    if batch_size > n:
        raise ValueError(f"a mini-batch of {batch_size} is larger than the task's {n} examples; use at most {n} "
                         f"(or no mini-batches: the whole task every step)")
    epochs = -(-steps * batch_size // n)  # ceil
    if generator is None:
        keys = (torch.arange(epochs * n) * 2654435761 + 97) % 4294967291  # Knuth's multiplicative hash
        perms = [torch.argsort(keys[e * n:(e + 1) * n]) for e in range(epochs)]
    else:
        perms = [torch.randperm(n, generator=generator) for _ in range(epochs)]
    order = torch.cat(perms) if perms else torch.zeros(0, dtype=torch.long)
    return order[: steps * batch_size].view(steps, batch_size)


MEMORY = ("second-order", "first-order", "checkpoint", "implicit")


class InnerOptimizer(NamedTuple):
    """An inner-loop update rule as a pair of pure functions (optax's ``GradientTransformation``).

    ``init(params) -> state``; ``update(grads, state, params, step) -> (new_params, new_state)``,
    ``step`` counting from 0. Neither mutates its inputs. A rule with ``uses_loss=True`` (Meta-LSTM,
    whose input includes the loss) is called ``update(grads, state, params, step, loss)`` with the
    step's support loss, a scalar tensor.
    """

    init: Callable[[Params], State]
    update: Callable[..., tuple[Params, State]]
    uses_loss: bool = False


def sgd(lr: float | Params) -> InnerOptimizer:
    """Plain gradient descent; ``lr`` is a scalar or a per-parameter dict of (learnable) rates (Meta-SGD)."""

    def update(grads: Params, state: State, params: Params, step: int) -> tuple[Params, State]:
        return sgd_step(params, grads, lr), state

    return InnerOptimizer(lambda params: (), update)


def adam(lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
         moments: tuple[Params, Params] | None = None, steps_taken: int = 0) -> InnerOptimizer:
    """Adam (Kingma & Ba 2015) as ``torch.optim.Adam`` computes it, functional and differentiable.

    The Reptile paper's inner loop uses ``betas=(0.0, 0.999)``. Second order through Adam is
    well defined: where a gradient is exactly zero (a dead ReLU unit) the square root's
    derivative is taken as 0, its value on the flat region around it, instead of ``inf``.

    State: ``(m, v)``, first and second moment dicts keyed like the adapted parameters. ``moments``
    and ``steps_taken`` continue an earlier run of the rule (its final state and step count), as the
    Reptile authors' code does when it carries Adam's moments from task to task; by default the
    moments start at zero.
    """
    beta1, beta2 = betas
    if not (0.0 <= beta1 < 1.0 and 0.0 <= beta2 < 1.0):
        raise ValueError(f"adam betas must lie in [0, 1), got {betas}")

    def init(params: Params) -> State:
        if moments is not None:
            return {k: moments[0][k] for k in params}, {k: moments[1][k] for k in params}
        return {k: torch.zeros_like(p) for k, p in params.items()}, {k: torch.zeros_like(p) for k, p in params.items()}

    def update(grads: Params, state: State, params: Params, step: int) -> tuple[Params, State]:
        m, v = state
        t = steps_taken + step + 1
        correction1, correction2 = 1 - beta1**t, (1 - beta2**t) ** 0.5
        if _plain_tensors(grads, params, m, v):
            return _adam_foreach(grads, m, v, params, beta1, beta2, lr / correction1, correction2, eps)
        m = {k: beta1 * m[k] + (1 - beta1) * grads[k] for k in params}
        v = {k: beta2 * v[k] + (1 - beta2) * grads[k] * grads[k] for k in params}
        new = {k: p - (lr / correction1) * m[k] / (_sqrt(v[k]) / correction2 + eps) for k, p in params.items()}
        return new, (m, v)

    return InnerOptimizer(init, update)


def _outside_transforms() -> bool:
    """Not inside a ``torch.func`` transform (``vmap``, ``grad``), where plain autograd and ``_foreach`` ops do not run."""
    return torch._C._functorch.peek_interpreter_stack() is None


def _plain_tensors(*dicts: Params) -> bool:
    """Outside transforms, and no tensor of these dicts carries a graph that an update would have to extend."""
    needs_graph = torch.is_grad_enabled() and any(t.requires_grad for d in dicts for t in d.values())
    return not needs_graph and _outside_transforms()


def _adam_foreach(grads: Params, m: Params, v: Params, params: Params, beta1: float, beta2: float, step_size: float,
                  correction2: float, eps: float) -> tuple[Params, State]:
    """Adam's update of ``adam`` with one fused ``torch._foreach_*`` call per operation over all tensors.

    The same operations in the same order as the per-tensor expressions (so the same values, bit for bit: a
    test checks it), for the loops nothing differentiates through (Reptile, first-order inner loops), where
    the per-tensor Python loop costs about as much as the model's forward and backward on a small batch.
    """
    keys = list(params)
    g = [grads[k] for k in keys]
    m_new = torch._foreach_add(torch._foreach_mul([m[k] for k in keys], beta1), torch._foreach_mul(g, 1 - beta1))
    v_new = torch._foreach_add(torch._foreach_mul([v[k] for k in keys], beta2),
                               torch._foreach_mul(torch._foreach_mul(g, 1 - beta2), g))
    denominator = torch._foreach_add(torch._foreach_div(torch._foreach_sqrt(v_new), correction2), eps)
    steps = torch._foreach_div(torch._foreach_mul(m_new, step_size), denominator)
    new = torch._foreach_sub([params[k] for k in keys], steps)
    return dict(zip(keys, new)), (dict(zip(keys, m_new)), dict(zip(keys, v_new)))


def _sqrt(v: Tensor) -> Tensor:
    """``sqrt(v)`` for ``v >= 0`` whose derivative at 0 is 0 rather than ``inf`` (which would turn into NaN)."""
    positive = v > 0
    return torch.where(positive, torch.where(positive, v, torch.ones_like(v)).sqrt(), torch.zeros_like(v))


def resolve_memory(memory: str, first_order: bool) -> str:
    """The memory option, with the legacy ``first_order=True`` read as ``"first-order"``."""
    if memory not in MEMORY:
        raise ValueError(f"unknown memory option {memory!r}; choose one of {MEMORY}")
    if first_order and memory not in ("second-order", "first-order"):
        raise ValueError(f"first_order=True contradicts memory={memory!r}; drop first_order (memory='first-order' is the same thing)")
    return "first-order" if first_order else memory


def _autograd_grads(loss_fn: Callable[[Params], Tensor], fast: Params) -> tuple[Params, Tensor]:
    """``grad_and_value(loss_fn)(fast)`` with a differentiable graph, by ``torch.autograd`` (checkpoint regions forbid ``torch.func``)."""
    leaves = {k: v if v.requires_grad else v.detach().requires_grad_() for k, v in fast.items()}
    loss = loss_fn(leaves)
    grads = torch.autograd.grad(loss, list(leaves.values()), create_graph=True, allow_unused=True, materialize_grads=True)
    return dict(zip(leaves, grads)), loss


def _first_order_grads(loss_fn: Callable[[Params], Tensor], fast: Params) -> tuple[Params, Tensor]:
    """``grad_and_value(loss_fn)(fast)`` detached, by ``torch.autograd`` without a graph (the same values, bit for bit)."""
    leaves = {k: v.detach().requires_grad_() for k, v in fast.items()}
    with torch.enable_grad():
        loss = loss_fn(leaves)
        grads = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True, materialize_grads=True)
    return dict(zip(leaves, grads)), loss.detach()


def adapt(
    model: nn.Module,
    params: Params,
    support_x: Tensor,
    support_y: Tensor,
    loss_fn: LossFn,
    steps: int,
    update: InnerOptimizer,
    adapt_keys: Iterable[str] | None = None,
    first_order: bool = False,
    memory: str = "second-order",
    implicit: Implicit = Implicit(),
    step_params: Sequence[Params] = (),
    batches: Tensor | None = None,
    return_state: bool = False,
) -> Params | tuple[Params, State]:
    """Takes ``steps`` update-rule steps on the support loss and returns the adapted parameters.

    Args:
        model: the network; only its structure is used, weights come from ``params``.
        params: starting parameters (the meta-parameters), keyed like ``named_parameters()``.
        support_x: ``(S, ...)`` support inputs of one task.
        support_y: ``(S, ...)`` support targets.
        loss_fn: ``loss_fn(model_output, support_y) -> scalar``.
        steps: number of inner steps (0 returns ``params`` unchanged).
        update: the update rule, e.g. ``sgd(0.4)`` or ``adam(1e-3, betas=(0.0, 0.999))``.
        adapt_keys: names of the parameters that adapt (default: all); the rest stay fixed.
        first_order: legacy spelling of ``memory="first-order"``.
        memory: ``"second-order"``, ``"first-order"``, ``"checkpoint"`` or ``"implicit"`` (module
            docstring); all four give the same adapted values except ``"implicit"``, whose inner
            problem has the proximal term.
        implicit: ``lam``, ``cg_steps`` and ``damping`` of ``memory="implicit"``.
        step_params: parameters overlaid on the forward pass of inner step ``k``:
            ``step_params[min(k, len - 1)]`` (per-step BatchNorm); they do not adapt.
        batches: ``(steps, batch_size)`` support row indices, one mini-batch per step
            (``minibatch_order``); default: every step takes the whole support set.
        return_state: also return the update rule's final state (to continue it later, e.g. Adam's moments).

    Returns:
        ``Params``: all parameters, the adapted ones replaced; differentiable w.r.t. ``params``
        as ``memory`` says.

    Example:
        >>> fast = adapt(model, params_of(model), x, y, F.cross_entropy, steps=5, update=sgd(0.4))
        >>> F.cross_entropy(forward_with(model, fast, query_x), query_y).backward()
    """
    memory = resolve_memory(memory, first_order)
    if not isinstance(update, InnerOptimizer):
        raise TypeError(f"update must be an InnerOptimizer such as sgd(lr) or adam(lr), got {type(update).__name__}")
    keys = list(params) if adapt_keys is None else list(adapt_keys)
    unknown = [k for k in keys if k not in params]
    if unknown:
        raise KeyError(f"adapt_keys {unknown} are not parameters of the model; known: {list(params)[:8]}...")
    if batches is not None and (batches.dim() != 2 or batches.shape[0] < steps):
        raise ValueError(f"batches must hold one row of support indices per step, shape (>= {steps}, batch_size); "
                         f"got {tuple(batches.shape)}")
    if steps == 0:
        return (dict(params), update.init({k: params[k] for k in keys})) if return_state else dict(params)
    fast = {k: params[k] for k in keys}
    frozen = {k: v for k, v in params.items() if k not in fast}

    if memory == "implicit":
        if batches is not None:
            raise ValueError("memory='implicit' solves one proximal problem on the whole support set; drop batches")
        if len(step_params) > 1:
            raise ValueError("memory='implicit' needs one inner problem for all steps; per-step parameters change it every "
                             "step. Use bn='transductive' or 'support', or memory='second-order' / 'checkpoint'")
        check_implicit(implicit)
        theta = detach(fast)
        with torch.no_grad():  # no graph through the loop: backward solves for the gradient instead
            phi, state = _run(model, theta, detach(frozen), support_x, support_y, loss_fn, steps, update, "first-order",
                              lambda f: proximal(f, theta, implicit.lam), ())
        adapted = {**frozen, **implicit_solution(model, loss_fn, support_x, support_y, fast, frozen, phi, implicit)}
        return (adapted, state) if return_state else adapted
    fast, state = _run(model, fast, frozen, support_x, support_y, loss_fn, steps, update, memory, None, step_params, batches)
    return ({**frozen, **fast}, state) if return_state else {**frozen, **fast}


def _run(
    model: nn.Module,
    fast: Params,
    frozen: Params,
    support_x: Tensor,
    support_y: Tensor,
    loss_fn: LossFn,
    steps: int,
    update: InnerOptimizer,
    memory: str,
    penalty: Callable[[Params], Tensor] | None,
    step_params: Sequence[Params],
    batches: Tensor | None = None,
) -> Params:
    """The loop itself: ``steps`` steps from ``fast``; returns the adapted ``fast`` and the rule's final state."""

    def support_loss(fast_params: Params, step: int) -> Tensor:
        x, y = (support_x, support_y) if batches is None else (support_x[batches[step]], support_y[batches[step]])
        loss = loss_fn(forward_with(model, {**frozen, **fast_params, **at_step(step_params, step)}, x), y)
        return loss if penalty is None else loss + penalty(fast_params)

    checkpointed = memory == "checkpoint" and torch.is_grad_enabled()  # without a graph there is nothing to save
    # first order outside torch.func transforms: plain autograd gives the same gradients with less overhead
    plain = memory == "first-order" and not update.uses_loss and _outside_transforms()

    def one_step(fast_params: Params, state: State, step: int) -> tuple[Params, State]:
        if checkpointed:
            grads, loss = _autograd_grads(lambda f: support_loss(f, step), fast_params)
        elif plain:
            grads, loss = _first_order_grads(lambda f: support_loss(f, step), fast_params)
        else:
            grads, loss = grad_and_value(support_loss)(fast_params, step)
        if memory == "first-order":
            grads = detach(grads)
        if update.uses_loss:
            return update.update(grads, state, fast_params, step, loss)
        return update.update(grads, state, fast_params, step)

    state = update.init(fast)
    for step in range(steps):
        if checkpointed:
            try:
                fast, state = checkpoint(one_step, fast, state, step, use_reentrant=False)
            except RuntimeError as error:
                if "saved tensor hooks" not in str(error):
                    raise
                raise ValueError("memory='checkpoint' cannot run under torch.func transforms (strategy='vmap'); "
                                 "use strategy='loop', or memory='implicit' for a memory-light vmap") from error
        else:
            fast, state = one_step(fast, state, step)
    return fast, state


class InnerLoop(NamedTuple):
    """How a gradient-based algorithm runs ``adapt`` and predicts: memory option and BatchNorm policy.

    Built once by ``inner_loop`` from an algorithm's constructor arguments (validated there).
    """

    memory: str = "second-order"
    implicit: Implicit = Implicit()
    bn: str = "transductive"

    def predict(
        self,
        model: nn.Module,
        params: Params,
        task: Task,
        loss_fn: LossFn,
        steps: int,
        update: InnerOptimizer,
        adapt_keys: Iterable[str] | None = None,
        step_params: Sequence[Params] = (),
        batches: Tensor | None = None,
    ) -> Tensor:
        """Adapts ``params`` to ``task``'s support set and predicts its query set ``(Q, ...)``.

        ``step_params``: per-step overlays (``bn="per-step"``); their keys never adapt, and the
        query forward after ``steps`` steps uses ``step_params[steps]`` (clamped). ``batches``:
        support mini-batches, one row of indices per step (``adapt``).
        """
        keys = list(params) if adapt_keys is None else list(adapt_keys)
        if step_params:
            keys = [k for k in keys if k not in step_params[-1]]  # per-step parameters are meta-learned only
        fast = adapt(model, params, task.support_x, task.support_y, loss_fn, steps, update, keys,
                     memory=self.memory, implicit=self.implicit, step_params=step_params, batches=batches)
        return predict_query(model, {**fast, **at_step(step_params, steps)}, task.support_x, task.query_x, self.bn)


def inner_loop(
    memory: str,
    first_order: bool,
    bn: str,
    strategy: str,
    implicit_lambda: float = 1.0,
    cg_steps: int = 5,
    cg_damping: float = 0.0,
) -> InnerLoop:
    """An algorithm's ``InnerLoop`` from its constructor arguments, every combination checked up front."""
    memory = resolve_memory(memory, first_order)
    check_bn(bn)
    if memory == "checkpoint" and strategy == "vmap":
        raise ValueError("memory='checkpoint' needs strategy='loop' (torch.utils.checkpoint cannot run under torch.func.vmap); "
                         "use strategy='loop', or memory='implicit' for memory that does not grow with inner steps under vmap")
    if memory == "implicit" and bn == "per-step":
        raise ValueError("memory='implicit' needs one inner problem for all steps, and bn='per-step' changes it every step; "
                         "use bn='transductive' or 'support', or memory='second-order' / 'checkpoint'")
    return InnerLoop(memory, check_implicit(Implicit(implicit_lambda, cg_steps, cg_damping)), bn)
