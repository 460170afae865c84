"""The memory switch: checkpoint == second order, implicit == the converged unrolled gradient,
conjugate gradient == a direct solve, vmap == loop for every option, and clear errors where a
combination cannot run."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import learnfast as lf
from learnfast.implicit import Implicit, conjugate_gradient
from learnfast.inner import MEMORY
from learnfast.train.build import build_algorithm
from learnfast.train.config import RunConfig, load_config
from conftest import REPO_ROOT, blob_tasks, bn_conv4, image_tasks, tiny_mlp

DT = torch.float64
TOL = 1e-10
GRADIENT_METHODS = {"maml": lf.MAML, "anil": lf.ANIL, "metasgd": lf.MetaSGD}


def meta_grads(algorithm, tasks):
    out = algorithm.meta_loss(tasks)
    out.loss.backward()
    return out, {k: p.grad for k, p in algorithm.named_parameters()}


def max_diff(a, b):
    return max((a[k] - b[k]).abs().max().item() for k in a)


def scale(grads):
    return max(g.abs().max().item() for g in grads.values())


# -- checkpoint -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(GRADIENT_METHODS))
@pytest.mark.parametrize("strided", [True, False], ids=["strided", "maxpool"])
def test_checkpoint_equals_second_order(name, strided):
    model = bn_conv4(strided)
    tasks = image_tasks(2, torch.Generator().manual_seed(3))
    cls = GRADIENT_METHODS[name]
    out_ref, reference = meta_grads(cls(copy.deepcopy(model), inner_steps=3, memory="second-order"), tasks)
    out_ck, checkpointed = meta_grads(cls(copy.deepcopy(model), inner_steps=3, memory="checkpoint"), tasks)
    assert scale(reference) > 1e-3
    assert max_diff(checkpointed, reference) < TOL
    assert abs(out_ck.loss.item() - out_ref.loss.item()) < TOL


def test_checkpoint_gradcheck_through_adapt():
    model = tiny_mlp()
    x, y = torch.randn(6, 8, dtype=DT), torch.randint(0, 3, (6,))
    xq, yq = torch.randn(6, 8, dtype=DT), torch.randint(0, 3, (6,))
    names = [n for n, _ in model.named_parameters()]
    inputs = tuple(p.detach().clone().requires_grad_() for p in model.parameters())

    def query_loss(*flat):
        fast = lf.adapt(model, dict(zip(names, flat)), x, y, F.cross_entropy, 3, lf.sgd(0.5), memory="checkpoint")
        return F.cross_entropy(lf.forward_with(model, fast, xq), yq)

    assert torch.autograd.gradcheck(query_loss, inputs, eps=1e-6, atol=1e-6, rtol=1e-4)


def test_checkpoint_without_grad_is_a_plain_loop():
    model = tiny_mlp()
    x, y = torch.randn(6, 8, dtype=DT), torch.randint(0, 3, (6,))
    params = lf.params_of(model)
    reference = lf.adapt(model, params, x, y, F.cross_entropy, 3, lf.sgd(0.5))
    with torch.no_grad():
        fast = lf.adapt(model, params, x, y, F.cross_entropy, 3, lf.sgd(0.5), memory="checkpoint")
    assert all(torch.allclose(fast[k], reference[k], atol=1e-14, rtol=0) for k in params)


# -- implicit ---------------------------------------------------------------------------------

def unrolled_proximal_grads(model, x, y, xq, yq, lam, lr, steps, adapt_keys=None):
    """The oracle: ``steps`` SGD steps on ``L_support + lam/2 ||phi - theta||^2`` with the whole
    graph kept (theta inside the proximal term too), then autograd of the query loss."""
    theta = {k: v.detach().clone().requires_grad_() for k, v in model.named_parameters()}
    keys = list(theta) if adapt_keys is None else adapt_keys
    fast, frozen = {k: theta[k] for k in keys}, {k: v for k, v in theta.items() if k not in keys}
    for _ in range(steps):
        penalty = 0.5 * lam * sum(((fast[k] - theta[k]) ** 2).sum() for k in fast)
        loss = F.mse_loss(lf.forward_with(model, {**frozen, **fast}, x), y) + penalty
        grads = torch.autograd.grad(loss, list(fast.values()), create_graph=True)
        fast = {k: v - lr * g for (k, v), g in zip(fast.items(), grads)}
    query = F.mse_loss(lf.forward_with(model, {**frozen, **fast}, xq), yq)
    return dict(zip(theta, torch.autograd.grad(query, list(theta.values())))), fast


def implicit_grads(model, x, y, xq, yq, lam, lr, steps, cg_steps, adapt_keys=None):
    theta = {k: v.detach().clone().requires_grad_() for k, v in model.named_parameters()}
    fast = lf.adapt(model, theta, x, y, F.mse_loss, steps, lf.sgd(lr), adapt_keys=adapt_keys,
                    memory="implicit", implicit=Implicit(lam=lam, cg_steps=cg_steps))
    query = F.mse_loss(lf.forward_with(model, fast, xq), yq)
    return dict(zip(theta, torch.autograd.grad(query, list(theta.values())))), fast


def regression(seed, n, in_features, out_features=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, in_features, generator=g, dtype=DT), torch.randn(n, out_features, generator=g, dtype=DT)


def test_implicit_equals_converged_second_order_on_linear_regression():
    """Quadratic inner problem: the unrolled loop converges, and with as many CG steps as
    parameters the implicit gradient is the exact limit of the unrolled one."""
    torch.manual_seed(0)
    model = nn.Linear(4, 1).double()
    (x, y), (xq, yq) = regression(0, 10, 4), regression(1, 10, 4)
    exact, phi_unrolled = unrolled_proximal_grads(model, x, y, xq, yq, lam=1.0, lr=0.2, steps=300)
    implicit, phi = implicit_grads(model, x, y, xq, yq, lam=1.0, lr=0.2, steps=300, cg_steps=5)
    assert all(torch.allclose(phi[k], phi_unrolled[k], atol=1e-12, rtol=0) for k in phi)
    assert scale(exact) > 1e-2
    assert max_diff(implicit, exact) < TOL
    # and it is not the query gradient at phi (what first order would give): the solve matters
    at_phi = {k: v.detach().requires_grad_() for k, v in phi.items()}
    g = torch.autograd.grad(F.mse_loss(lf.forward_with(model, at_phi, xq), yq), list(at_phi.values()))
    assert max_diff(implicit, dict(zip(at_phi, g))) > 1e-3


def test_implicit_equals_converged_second_order_on_tiny_mlp():
    """Non-quadratic inner problem (tanh MLP): with a strong enough proximal term the loop converges."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2)).double()
    (x, y), (xq, yq) = regression(2, 8, 3, 2), regression(3, 8, 3, 2)
    exact, _ = unrolled_proximal_grads(model, x, y, xq, yq, lam=2.0, lr=0.2, steps=250)
    implicit, _ = implicit_grads(model, x, y, xq, yq, lam=2.0, lr=0.2, steps=250, cg_steps=40)
    assert scale(exact) > 1e-2
    assert max_diff(implicit, exact) < 1e-9


def test_implicit_cross_term_reaches_frozen_parameters():
    """ANIL-style: only the head adapts; the body's implicit gradient includes the cross term."""
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2)).double()
    (x, y), (xq, yq) = regression(4, 8, 3, 2), regression(5, 8, 3, 2)
    head = ["2.weight", "2.bias"]
    exact, _ = unrolled_proximal_grads(model, x, y, xq, yq, lam=1.0, lr=0.3, steps=300, adapt_keys=head)
    implicit, _ = implicit_grads(model, x, y, xq, yq, lam=1.0, lr=0.3, steps=300, cg_steps=12, adapt_keys=head)
    assert exact["0.weight"].abs().max() > 1e-3  # the body does get a meta-gradient
    assert max_diff(implicit, exact) < 1e-9


def test_implicit_keeps_no_graph_through_the_loop():
    """The adapted parameters hang off one implicit node over theta, whatever the number of steps."""

    def graph_size(fast):
        seen, stack = set(), [v.grad_fn for v in fast.values() if v.grad_fn is not None]
        while stack:
            node = stack.pop()
            if node is not None and node not in seen:
                seen.add(node)
                stack.extend(next_node for next_node, _ in node.next_functions)
        return len(seen)

    model = tiny_mlp()
    x, y = torch.randn(6, 8, dtype=DT), torch.randint(0, 3, (6,))
    params = lf.params_of(model)
    sizes = {memory: [graph_size(lf.adapt(model, params, x, y, F.cross_entropy, steps, lf.sgd(0.3), memory=memory))
                      for steps in (1, 10)] for memory in ("second-order", "implicit")}
    assert sizes["implicit"][0] == sizes["implicit"][1]
    assert sizes["second-order"][1] > 5 * sizes["second-order"][0]


def test_conjugate_gradient_equals_direct_solve():
    g = torch.Generator().manual_seed(0)
    m = torch.randn(6, 6, generator=g, dtype=DT)
    a = m @ m.T + 0.5 * torch.eye(6, dtype=DT)  # symmetric positive definite
    b = torch.randn(6, generator=g, dtype=DT)
    split = lambda v: {"w": v[:2].reshape(2, 1), "b": v[2:]}  # a parameter dict of two shapes
    flat = lambda d: torch.cat([d["w"].flatten(), d["b"]])
    x = conjugate_gradient(lambda v: split(a @ flat(v)), split(b), steps=6)
    assert torch.allclose(flat(x), torch.linalg.solve(a, b), atol=1e-10, rtol=0)
    assert not torch.allclose(flat(conjugate_gradient(lambda v: split(a @ flat(v)), split(b), steps=2)), torch.linalg.solve(a, b), atol=1e-6)


def test_conjugate_gradient_past_convergence_stays_finite():
    a = torch.diag(torch.tensor([1.0, 2.0], dtype=DT))
    x = conjugate_gradient(lambda v: {"x": a @ v["x"]}, {"x": torch.tensor([1.0, 1.0], dtype=DT)}, steps=10)
    assert torch.allclose(x["x"], torch.tensor([1.0, 0.5], dtype=DT), atol=1e-14, rtol=0)
    zero = conjugate_gradient(lambda v: {"x": a @ v["x"]}, {"x": torch.zeros(2, dtype=DT)}, steps=3)
    assert torch.equal(zero["x"], torch.zeros(2, dtype=DT))


@pytest.mark.parametrize("name", ["maml", "anil"])
def test_implicit_algorithm_learns_and_differs_from_second_order(name):
    tasks = blob_tasks(3, torch.Generator().manual_seed(0), dtype=DT)
    cls = GRADIENT_METHODS[name]
    _, implicit = meta_grads(cls(tiny_mlp(), inner_lr=0.3, inner_steps=5, memory="implicit", implicit_lambda=2.0), tasks)
    _, second = meta_grads(cls(tiny_mlp(), inner_lr=0.3, inner_steps=5), tasks)
    assert all(torch.isfinite(g).all() for g in implicit.values())
    assert all(g.abs().sum() > 0 for g in implicit.values())
    assert max_diff(implicit, second) > 1e-6  # a different inner problem, so a different gradient


# -- every option under vmap equals the loop ----------------------------------------------------

VMAP_OPTIONS = [(name, memory) for name in sorted(GRADIENT_METHODS) for memory in MEMORY
                if memory != "checkpoint" and not (name == "metasgd" and memory == "implicit")]


@pytest.mark.parametrize("name,memory", VMAP_OPTIONS)
def test_vmap_equals_loop_for_every_memory_option(name, memory):
    model = bn_conv4(strided=True)
    tasks = image_tasks(3, torch.Generator().manual_seed(1))
    cls = GRADIENT_METHODS[name]
    out_loop, loop = meta_grads(cls(copy.deepcopy(model), inner_steps=2, memory=memory, strategy="loop"), tasks)
    out_vmap, vmapped = meta_grads(cls(copy.deepcopy(model), inner_steps=2, memory=memory, strategy="vmap"), tasks)
    assert scale(loop) > 1e-3
    assert max_diff(vmapped, loop) < TOL
    assert abs(out_loop.loss.item() - out_vmap.loss.item()) < TOL
    assert (out_loop.predictions - out_vmap.predictions).abs().max().item() < TOL


# -- options, aliases and errors ---------------------------------------------------------------

def test_first_order_alias_equals_memory_first_order():
    tasks = blob_tasks(3, torch.Generator().manual_seed(0), dtype=DT)
    _, alias = meta_grads(lf.MAML(tiny_mlp(), inner_steps=2, first_order=True), tasks)
    _, named = meta_grads(lf.MAML(tiny_mlp(), inner_steps=2, memory="first-order"), tasks)
    assert max_diff(alias, named) == 0.0
    assert lf.MAML(tiny_mlp(), first_order=True).inner.memory == "first-order"


def test_fomaml_config_still_loads():
    cfg = load_config(REPO_ROOT / "configs" / "fomaml-omniglot-5w1s.toml")
    cfg.model.hidden = 4
    maml = build_algorithm(cfg)
    assert maml.inner.memory == "first-order" and maml.first_order


@pytest.mark.parametrize("name", sorted(GRADIENT_METHODS))
def test_memory_and_bn_are_config_keys(name):
    memory = "checkpoint" if name == "metasgd" else "implicit"
    cfg = RunConfig(algorithm={"name": name, "memory": memory, "bn": "support"})
    cfg.model.backbone, cfg.model.hidden = "conv4", 4
    algorithm = build_algorithm(cfg)
    assert algorithm.inner.memory == memory and algorithm.inner.bn == "support"


def test_implicit_options_from_config():
    cfg = RunConfig(algorithm={"name": "maml", "memory": "implicit", "implicit_lambda": 0.5, "cg_steps": 3, "cg_damping": 0.1})
    cfg.model.backbone, cfg.model.hidden = "conv4", 4
    assert build_algorithm(cfg).inner.implicit == Implicit(lam=0.5, cg_steps=3, damping=0.1)


@pytest.mark.parametrize("kwargs,message", [
    ({"memory": "third-order"}, "unknown memory option"),
    ({"memory": "checkpoint", "first_order": True}, "first_order=True contradicts"),
    ({"memory": "checkpoint", "strategy": "vmap"}, "needs strategy='loop'"),
    ({"memory": "implicit", "bn": "per-step"}, "one inner problem"),
    ({"memory": "implicit", "implicit_lambda": 0.0}, "implicit_lambda must be > 0"),
    ({"memory": "implicit", "cg_steps": 0}, "cg_steps must be >= 1"),
    ({"bn": "running"}, "unknown bn policy"),
])
def test_bad_options_fail_with_the_fix(kwargs, message):
    with pytest.raises(ValueError, match=message):
        lf.MAML(tiny_mlp(), **kwargs)


def test_metasgd_rejects_implicit():
    with pytest.raises(ValueError, match="learned rates, so they would get no gradient"):
        lf.MetaSGD(tiny_mlp(), memory="implicit")


def test_checkpoint_under_a_transform_names_the_fix():
    maml = lf.MAML(tiny_mlp(), inner_steps=1, memory="checkpoint")
    maml.strategy = "vmap"  # switched after construction, past the constructor's check
    with pytest.raises(ValueError, match="use strategy='loop'"):
        maml.meta_loss(blob_tasks(2, torch.Generator().manual_seed(0), dtype=DT))


# -- memory against inner steps (the benchmark's measurement) -----------------------------------

@pytest.mark.slow
def test_checkpoint_and_implicit_memory_grow_far_slower_than_second_order():
    """Peak tensor memory of a Conv4 meta-gradient, 1 vs 10 inner steps (profiler, as benchmarks/memory_steps.py)."""
    import argparse
    import sys

    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    from memory_steps import tensor_peak

    args = argparse.Namespace(threads=1, meta_batch=2, backbone="conv4", implicit_lambda=1.0, cg_steps=5)
    growth = {memory: tensor_peak(memory, 10, args) - tensor_peak(memory, 1, args)
              for memory in ("second-order", "checkpoint", "implicit")}
    assert growth["second-order"] > 20  # MiB: the unrolled graph of 9 more steps
    assert growth["checkpoint"] < 0.5 * growth["second-order"]
    assert abs(growth["implicit"]) < 1.0
