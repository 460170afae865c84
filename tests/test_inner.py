"""The functional core and the one inner loop: oracles against torch.optim.SGD and gradcheck."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import learnfast as lf
from learnfast.functional import detach, expand

DT = torch.float64


def tiny_mlp(seed=0, in_features=3, hidden=(5,), out_features=2):
    torch.manual_seed(seed)
    return lf.MLP(in_features=in_features, hidden=hidden, out_features=out_features).double()


def regression_data(seed=0, n=6, in_features=3, out_features=2):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, in_features, generator=g, dtype=DT), torch.randn(n, out_features, generator=g, dtype=DT)


def test_params_of_shares_tensors_and_skips_frozen():
    model = tiny_mlp()
    model.net[0].bias.requires_grad_(False)
    params = lf.params_of(model)
    assert "net.0.bias" not in params
    assert params["net.0.weight"] is model.net[0].weight


def test_forward_with_uses_given_params_and_falls_back():
    model = tiny_mlp()
    x, _ = regression_data()
    assert torch.equal(lf.forward_with(model, {}, x), model(x))
    zeroed = {"net.2.weight": torch.zeros_like(model.net[2].weight)}
    out = lf.forward_with(model, zeroed, x)
    assert torch.allclose(out, model.net[2].bias.expand_as(out))
    assert not torch.equal(model.net[2].weight, torch.zeros_like(model.net[2].weight))  # module untouched


def test_sgd_step_not_in_place_and_per_parameter_lr():
    params = {"a": torch.ones(3), "b": torch.full((2,), 2.0)}
    grads = {"a": torch.ones(3), "b": torch.ones(2)}
    out = lf.sgd_step(params, grads, 0.5)
    assert torch.equal(out["a"], torch.full((3,), 0.5)) and torch.equal(out["b"], torch.full((2,), 1.5))
    assert torch.equal(params["a"], torch.ones(3))  # inputs untouched
    out = lf.sgd_step(params, grads, {"a": torch.tensor(0.1), "b": torch.tensor([1.0, 2.0])})
    assert torch.allclose(out["a"], torch.full((3,), 0.9)) and torch.allclose(out["b"], torch.tensor([1.0, 0.0]))


def test_detach_and_expand():
    p = {"w": torch.randn(2, 3, requires_grad=True)}
    assert not detach(p)["w"].requires_grad
    e = expand(p, 4)["w"]
    assert e.shape == (4, 2, 3) and torch.equal(e[3], p["w"])


def test_zero_steps_returns_params():
    model = tiny_mlp()
    x, y = regression_data()
    params = lf.params_of(model)
    fast = lf.adapt(model, params, x, y, F.mse_loss, steps=0, update=lf.sgd(0.1))
    assert fast.keys() == params.keys() and all(fast[k] is params[k] for k in params)


@pytest.mark.parametrize("steps", [1, 3])
def test_adapt_equals_torch_optim_sgd(steps):
    """k differentiable SGD steps == k steps of torch.optim.SGD on a copy of the model."""
    model = tiny_mlp()
    x, y = regression_data()
    lr = 0.3
    fast = lf.adapt(model, lf.params_of(model), x, y, F.mse_loss, steps=steps, update=lf.sgd(lr))

    reference = copy.deepcopy(model)
    opt = torch.optim.SGD(reference.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        F.mse_loss(reference(x), y).backward()
        opt.step()
    for name, p in reference.named_parameters():
        assert torch.allclose(fast[name], p, atol=1e-12, rtol=0), name
    # and the original model was not modified
    for (name, p), (_, q) in zip(model.named_parameters(), tiny_mlp().named_parameters()):
        assert torch.equal(p, q), name


def test_adapt_keys_only_adapts_those():
    model = tiny_mlp()
    x, y = regression_data()
    params = lf.params_of(model)
    fast = lf.adapt(model, params, x, y, F.mse_loss, steps=2, update=lf.sgd(0.3), adapt_keys=["net.2.weight", "net.2.bias"])
    assert fast["net.0.weight"] is params["net.0.weight"] and fast["net.0.bias"] is params["net.0.bias"]
    assert not torch.allclose(fast["net.2.weight"], params["net.2.weight"])

    # oracle: SGD on the head only
    reference = copy.deepcopy(model)
    opt = torch.optim.SGD(reference.net[2].parameters(), lr=0.3)
    for _ in range(2):
        opt.zero_grad()
        F.mse_loss(reference(x), y).backward()
        opt.step()
    assert torch.allclose(fast["net.2.weight"], reference.net[2].weight, atol=1e-12, rtol=0)


def test_adapt_unknown_keys():
    model = tiny_mlp()
    x, y = regression_data()
    with pytest.raises(KeyError, match="not parameters of the model"):
        lf.adapt(model, lf.params_of(model), x, y, F.mse_loss, steps=1, update=lf.sgd(0.1), adapt_keys=["nope"])


def test_per_parameter_learning_rates_are_learnable():
    """Meta-SGD style: a dict of learnable rates receives a gradient through the inner loop."""
    model = tiny_mlp()
    x, y = regression_data()
    xq, yq = regression_data(seed=1)
    params = lf.params_of(model)
    rates = {k: torch.full_like(v, 0.1, requires_grad=True) for k, v in params.items()}
    fast = lf.adapt(model, params, x, y, F.mse_loss, steps=1, update=lf.sgd(rates))
    F.mse_loss(lf.forward_with(model, fast, xq), yq).backward()
    assert all(r.grad is not None and r.grad.abs().sum() > 0 for r in rates.values())


def test_first_order_drops_second_order_terms():
    """With first_order, d adapted / d params is the identity: the query gradient passes straight through."""
    model = tiny_mlp()
    x, y = regression_data()
    xq, yq = regression_data(seed=1)
    params = {k: v.detach().clone().requires_grad_() for k, v in lf.params_of(model).items()}
    fast = lf.adapt(model, params, x, y, F.mse_loss, steps=2, update=lf.sgd(0.3), first_order=True)
    grads = torch.autograd.grad(F.mse_loss(lf.forward_with(model, fast, xq), yq), list(params.values()))
    at_fast = {k: v.detach().requires_grad_() for k, v in fast.items()}
    expected = torch.autograd.grad(F.mse_loss(lf.forward_with(model, at_fast, xq), yq), list(at_fast.values()))
    for g, e in zip(grads, expected):
        assert torch.allclose(g, e, atol=1e-14, rtol=0)


@pytest.mark.parametrize("rule", [lf.sgd(0.2), lf.adam(0.05, betas=(0.0, 0.999))], ids=["sgd", "adam"])
def test_second_order_gradcheck(rule):
    """gradcheck: initial parameters -> 2 second-order inner steps -> query loss, in float64.

    With Adam this also guards the square root's derivative at 0: a dead ReLU unit's exactly-zero
    gradient made the second-order gradient NaN.
    """
    model = tiny_mlp(hidden=(4,))
    x, y = regression_data(n=5)
    xq, yq = regression_data(seed=1, n=5)
    names = [n for n, _ in model.named_parameters()]
    inputs = tuple(p.detach().clone().requires_grad_() for p in model.parameters())

    def query_loss(*flat):
        fast = lf.adapt(model, dict(zip(names, flat)), x, y, F.mse_loss, steps=2, update=rule)
        return F.mse_loss(lf.forward_with(model, fast, xq), yq)

    assert torch.autograd.gradcheck(query_loss, inputs, eps=1e-6, atol=1e-6, rtol=1e-4)


def test_gradcheck_detects_first_order():
    """Sanity check of the check above: the first-order gradient is not the true gradient."""
    model = tiny_mlp(hidden=(4,))
    x, y = regression_data(n=5)
    xq, yq = regression_data(seed=1, n=5)
    names = [n for n, _ in model.named_parameters()]
    inputs = tuple(p.detach().clone().requires_grad_() for p in model.parameters())

    def query_loss(*flat):
        fast = lf.adapt(model, dict(zip(names, flat)), x, y, F.mse_loss, steps=2, update=lf.sgd(0.2), first_order=True)
        return F.mse_loss(lf.forward_with(model, fast, xq), yq)

    assert not torch.autograd.gradcheck(query_loss, inputs, eps=1e-6, atol=1e-6, rtol=1e-4, raise_exception=False)


def test_adapt_under_vmap_matches_loop():
    model = tiny_mlp()
    g = torch.Generator().manual_seed(0)
    xs, ys = torch.randn(3, 6, 3, generator=g, dtype=DT), torch.randn(3, 6, 2, generator=g, dtype=DT)
    params = detach(lf.params_of(model))
    batched = torch.func.vmap(lambda a, b: lf.adapt(model, params, a, b, F.mse_loss, 2, lf.sgd(0.3)))(xs, ys)
    for t in range(3):
        single = lf.adapt(model, params, xs[t], ys[t], F.mse_loss, 2, lf.sgd(0.3))
        for k in params:
            assert torch.allclose(batched[k][t], single[k], atol=1e-13, rtol=0)


def test_adapt_works_on_plain_module_with_buffers():
    """The model stays a plain nn.Module: one with a buffer and a non-Sequential forward adapts too."""

    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 2).double()
            self.register_buffer("scale", torch.tensor(2.0, dtype=DT))

        def forward(self, x):
            return self.lin(x) * self.scale

    model = Scaled()
    x, y = regression_data()
    fast = lf.adapt(model, lf.params_of(model), x, y, F.mse_loss, steps=1, update=lf.sgd(0.1))
    reference = copy.deepcopy(model)
    F.mse_loss(reference(x), y).backward()
    assert torch.allclose(fast["lin.weight"], model.lin.weight - 0.1 * reference.lin.weight.grad, atol=1e-14, rtol=0)


# -- stateful update rules ----------------------------------------------------------------------

@pytest.mark.parametrize("betas", [(0.0, 0.999), (0.9, 0.99)])
def test_adam_equals_torch_optim_adam_step_by_step(betas):
    """k functional Adam steps == k steps of torch.optim.Adam, for every k (bias corrections included)."""
    model = tiny_mlp()
    x, y = regression_data()
    lr = 0.05
    reference = copy.deepcopy(model)
    opt = torch.optim.Adam(reference.parameters(), lr=lr, betas=betas)
    for steps in range(1, 5):
        opt.zero_grad()
        F.mse_loss(reference(x), y).backward()
        opt.step()
        fast = lf.adapt(model, lf.params_of(model), x, y, F.mse_loss, steps=steps, update=lf.adam(lr, betas=betas))
        for name, p in reference.named_parameters():
            assert torch.allclose(fast[name], p, atol=1e-13, rtol=0), (steps, name)
    assert not torch.allclose(fast["net.0.weight"], lf.adapt(model, lf.params_of(model), x, y, F.mse_loss, 4, lf.sgd(lr))["net.0.weight"])


def test_update_rules_are_pure_init_update_pairs():
    params = {"w": torch.ones(3, dtype=DT)}
    grads = {"w": torch.full((3,), 2.0, dtype=DT)}
    rule = lf.adam(0.1)
    state = rule.init(params)
    new, new_state = rule.update(grads, state, params, 0)
    assert torch.equal(params["w"], torch.ones(3, dtype=DT)) and torch.equal(state[0]["w"], torch.zeros(3, dtype=DT))
    assert torch.allclose(new["w"], torch.full((3,), 0.9, dtype=DT), atol=1e-6)  # first Adam step moves by lr
    assert torch.allclose(new_state[0]["w"], 0.1 * grads["w"]) and torch.allclose(new_state[1]["w"], 0.001 * grads["w"] ** 2)
    sgd = lf.sgd(0.5)
    assert sgd.init(params) == ()
    assert torch.equal(sgd.update(grads, (), params, 3)[0]["w"], torch.zeros(3, dtype=DT))


def test_adam_without_a_graph_is_the_per_tensor_update_bit_for_bit():
    """Where nothing needs a graph Adam runs fused ``_foreach`` ops; they must give exactly the per-tensor values."""
    g = torch.Generator().manual_seed(0)
    shapes = {"a": (4, 3), "b": (3,), "c": (2, 2, 3)}
    params = {k: torch.randn(s, generator=g) for k, s in shapes.items()}
    grads = {k: torch.randn(s, generator=g) for k, s in shapes.items()}
    moments = ({k: torch.randn(s, generator=g) for k, s in shapes.items()}, {k: torch.rand(s, generator=g) for k, s in shapes.items()})
    for betas in ((0.0, 0.999), (0.9, 0.99)):
        rule = lf.adam(1e-3, betas=betas, moments=moments, steps_taken=3)
        fused, (m, v) = rule.update(grads, rule.init(params), params, 1)
        leaves = {k: t.clone().requires_grad_() for k, t in params.items()}  # a graph forces the per-tensor expressions
        reference, (m_ref, v_ref) = rule.update(grads, rule.init(leaves), leaves, 1)
        assert all(reference[k].requires_grad and not fused[k].requires_grad for k in shapes)
        for k in shapes:
            assert torch.equal(fused[k], reference[k].detach()) and torch.equal(m[k], m_ref[k]) and torch.equal(v[k], v_ref[k]), k


def test_first_order_loop_outside_vmap_matches_grad_and_value_bit_for_bit():
    """The first-order loop takes its gradients by plain autograd; torch.func's grad_and_value gives the same bits."""
    model = tiny_mlp()
    x, y = regression_data()
    params = lf.params_of(model)
    rule = lf.adam(0.05, betas=(0.0, 0.999))
    got = lf.adapt(model, params, x, y, F.mse_loss, 3, rule, memory="first-order")
    fast, state = detach(params), rule.init(params)
    for step in range(3):
        grads = torch.func.grad(lambda f: F.mse_loss(torch.func.functional_call(model, f, (x,)), y))(fast)
        fast, state = rule.update(detach(grads), state, fast, step)
    assert all(torch.equal(got[k].detach(), fast[k].detach()) for k in params)
    got["net.0.weight"].sum().backward()  # first order: d phi / d theta is the identity
    assert torch.equal(params["net.0.weight"].grad, torch.ones_like(params["net.0.weight"]))


def test_adam_under_vmap_matches_loop():
    model = tiny_mlp()
    g = torch.Generator().manual_seed(0)
    xs, ys = torch.randn(3, 6, 3, generator=g, dtype=DT), torch.randn(3, 6, 2, generator=g, dtype=DT)
    params = detach(lf.params_of(model))
    rule = lf.adam(0.05, betas=(0.0, 0.999))
    batched = torch.func.vmap(lambda a, b: lf.adapt(model, params, a, b, F.mse_loss, 3, rule))(xs, ys)
    for t in range(3):
        single = lf.adapt(model, params, xs[t], ys[t], F.mse_loss, 3, rule)
        assert all(torch.allclose(batched[k][t], single[k], atol=1e-13, rtol=0) for k in params)


def test_adapt_rejects_a_bare_function_as_update():
    model = tiny_mlp()
    x, y = regression_data()
    with pytest.raises(TypeError, match="InnerOptimizer such as sgd"):
        lf.adapt(model, lf.params_of(model), x, y, F.mse_loss, 1, lambda p, g, s: p)


def test_adam_rejects_bad_betas():
    with pytest.raises(ValueError, match=r"betas must lie in \[0, 1\)"):
        lf.adam(0.1, betas=(1.0, 0.999))


@pytest.mark.parametrize("memory", ["first-order", "checkpoint", "implicit"])
def test_memory_options_adapt_to_the_same_kind_of_values(memory):
    """Every option adapts; all but "implicit" (a proximal inner problem) to exactly the second-order values."""
    model = tiny_mlp()
    x, y = regression_data()
    params = lf.params_of(model)
    reference = lf.adapt(model, params, x, y, F.mse_loss, 3, lf.sgd(0.3))
    fast = lf.adapt(model, params, x, y, F.mse_loss, 3, lf.sgd(0.3), memory=memory)
    same = all(torch.allclose(fast[k], reference[k], atol=1e-14, rtol=0) for k in params)
    assert same == (memory != "implicit")
    assert not torch.allclose(fast["net.0.weight"], params["net.0.weight"])
