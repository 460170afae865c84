"""MAML: oracles (zero steps = plain model, a hand-written autograd MAML, the FOMAML definition)."""
import copy

import pytest
import torch
import torch.nn.functional as F

import learnfast as lf
from conftest import blob_tasks

DT = torch.float64


def tiny_classifier(seed=0, dim=8, ways=3):
    torch.manual_seed(seed)
    return lf.MLP(in_features=dim, hidden=(6,), out_features=ways).double()


def batch(seed=0, size=3):
    return blob_tasks(size, torch.Generator().manual_seed(seed), dtype=DT)


def reference_maml_grads(model, tasks, inner_lr, steps, first_order):
    """MAML written with plain torch.autograd (create_graph for second order), one task at a time."""
    params = list(model.parameters())
    total = [torch.zeros_like(p) for p in params]
    for t in range(tasks.batch_size):
        fast = list(params)
        names = [n for n, _ in model.named_parameters()]
        for _ in range(steps):
            loss = F.cross_entropy(lf.forward_with(model, dict(zip(names, fast)), tasks.support_x[t]), tasks.support_y[t])
            grads = torch.autograd.grad(loss, fast, create_graph=not first_order)
            fast = [w - inner_lr * g for w, g in zip(fast, grads)]
        query = F.cross_entropy(lf.forward_with(model, dict(zip(names, fast)), tasks.query_x[t]), tasks.query_y[t])
        for acc, g in zip(total, torch.autograd.grad(query, params)):
            acc += g / tasks.batch_size
    return dict(zip([n for n, _ in model.named_parameters()], total))


@pytest.mark.parametrize("strategy", ["loop", "vmap"])
def test_zero_inner_steps_is_the_plain_model(strategy):
    model = tiny_classifier()
    maml = lf.MAML(copy.deepcopy(model), inner_lr=0.5, inner_steps=0, strategy=strategy)
    tasks = batch()
    predictions = maml(tasks)
    assert predictions.shape == (3, tasks.query_x.shape[1], 3)
    for t in range(tasks.batch_size):
        assert torch.allclose(predictions[t], model(tasks.query_x[t]), atol=1e-14, rtol=0)
    # and the meta-loss is the plain query loss
    out = maml.meta_loss(tasks)
    expected = torch.stack([F.cross_entropy(model(tasks.query_x[t]), tasks.query_y[t]) for t in range(3)]).mean()
    assert torch.allclose(out.loss, expected, atol=1e-14, rtol=0)


@pytest.mark.parametrize("strategy", ["loop", "vmap"])
@pytest.mark.parametrize("first_order", [False, True])
@pytest.mark.parametrize("steps", [1, 2])
def test_meta_gradient_matches_autograd_reference(strategy, first_order, steps):
    model = tiny_classifier()
    tasks = batch()
    maml = lf.MAML(copy.deepcopy(model), inner_lr=0.5, inner_steps=steps, first_order=first_order, strategy=strategy)
    out = maml.meta_loss(tasks)
    out.loss.backward()
    expected = reference_maml_grads(model, tasks, 0.5, steps, first_order)
    for name, p in maml.model.named_parameters():
        assert torch.allclose(p.grad, expected[name], atol=1e-12, rtol=0), name


@pytest.mark.parametrize("strategy", ["loop", "vmap"])
def test_first_order_is_query_gradient_at_adapted_params(strategy):
    """FOMAML definition: the meta-gradient is the query-loss gradient evaluated at the adapted parameters."""
    model = tiny_classifier()
    tasks = batch()
    maml = lf.MAML(copy.deepcopy(model), inner_lr=0.5, inner_steps=2, first_order=True, strategy=strategy)
    maml.meta_loss(tasks).loss.backward()
    expected = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for t in range(tasks.batch_size):
        fast = lf.adapt(model, lf.params_of(model), tasks.support_x[t], tasks.support_y[t], F.cross_entropy, 2, lf.sgd(0.5))
        fast = {k: v.detach().requires_grad_() for k, v in fast.items()}
        loss = F.cross_entropy(lf.forward_with(model, fast, tasks.query_x[t]), tasks.query_y[t])
        for (k, v), g in zip(fast.items(), torch.autograd.grad(loss, list(fast.values()))):
            expected[k] += g / tasks.batch_size
    for name, p in maml.model.named_parameters():
        assert torch.allclose(p.grad, expected[name], atol=1e-13, rtol=0), name
    # and it differs from the second-order gradient (the test would be vacuous otherwise)
    second = reference_maml_grads(model, tasks, 0.5, 2, first_order=False)
    assert any(not torch.allclose(p.grad, second[n], atol=1e-8) for n, p in maml.model.named_parameters())


def test_meta_loss_value_and_predictions():
    model = tiny_classifier()
    tasks = batch()
    maml = lf.MAML(copy.deepcopy(model), inner_lr=0.5, inner_steps=1)
    out = maml.meta_loss(tasks)
    assert not out.predictions.requires_grad
    assert torch.allclose(out.predictions, maml(tasks), atol=1e-14, rtol=0)
    expected = torch.stack([F.cross_entropy(out.predictions[t], tasks.query_y[t]) for t in range(3)]).mean()
    assert torch.allclose(out.loss, expected, atol=1e-14, rtol=0)


def test_vmap_loss_value_equals_loop():
    model = tiny_classifier()
    tasks = batch()
    a = lf.MAML(copy.deepcopy(model), inner_lr=0.5, strategy="loop").meta_loss(tasks)
    b = lf.MAML(copy.deepcopy(model), inner_lr=0.5, strategy="vmap").meta_loss(tasks)
    assert torch.allclose(a.loss, b.loss, atol=1e-14, rtol=0)
    assert torch.allclose(a.predictions, b.predictions, atol=1e-14, rtol=0)


def test_eval_inner_steps_used_in_eval_mode():
    model = tiny_classifier()
    tasks = batch()
    maml = lf.MAML(copy.deepcopy(model), inner_lr=0.5, inner_steps=1, eval_inner_steps=3)
    assert maml.default_steps() == 1
    maml.eval()
    assert maml.default_steps() == 3
    assert torch.equal(maml(tasks), maml(tasks, inner_steps=3))
    assert not torch.allclose(maml(tasks), maml(tasks, inner_steps=1))
    # forward(inner_steps=k) is adapt with k steps then predict
    t = 1
    fast = lf.adapt(model, lf.params_of(model), tasks.support_x[t], tasks.support_y[t], F.cross_entropy, 3, lf.sgd(0.5))
    assert torch.allclose(maml(tasks)[t], lf.forward_with(model, fast, tasks.query_x[t]), atol=1e-14, rtol=0)


def test_mse_loss_for_regression():
    torch.manual_seed(0)
    maml = lf.MAML(lf.MLP(hidden=(8,)).double(), inner_lr=0.01, loss="mse")
    from learnfast.data import SinusoidTasks

    tasks = SinusoidTasks(shots=5, queries=5).sample(2, torch.Generator().manual_seed(0)).to(dtype=DT)
    out = maml.meta_loss(tasks)
    assert out.predictions.shape == (2, 5, 1)
    expected = torch.stack([F.mse_loss(out.predictions[t], tasks.query_y[t]) for t in range(2)]).mean()
    assert torch.allclose(out.loss, expected, atol=1e-14, rtol=0)


def test_constructor_errors():
    model = tiny_classifier()
    with pytest.raises(ValueError, match="inner_steps and eval_inner_steps must be >= 0"):
        lf.MAML(model, inner_steps=-1)
    with pytest.raises(ValueError, match="inner_steps and eval_inner_steps must be >= 0"):
        lf.MAML(model, eval_inner_steps=-2)
    with pytest.raises(ValueError, match="unknown strategy 'fast'"):
        lf.MAML(model, strategy="fast")
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        lf.MAML(model, loss="hinge")


@pytest.mark.parametrize("cls", [lf.MAML, lf.ANIL, lf.MetaSGD])
def test_first_order_with_an_explicit_second_order_memory_is_refused(cls):
    with pytest.raises(ValueError, match="first_order=True contradicts memory='second-order'"):
        cls(tiny_classifier(), first_order=True, memory="second-order")
    assert cls(tiny_classifier(), first_order=True).inner.memory == "first-order"
    assert cls(tiny_classifier(), first_order=True, memory="first-order").inner.memory == "first-order"
    assert cls(tiny_classifier()).inner.memory == "second-order"


@pytest.mark.parametrize("cls", [lf.MAML, lf.ANIL])
@pytest.mark.parametrize("option", [{"implicit_lambda": 2.0}, {"cg_steps": 3}, {"cg_damping": 0.1}])
@pytest.mark.parametrize("memory", [{}, {"memory": "second-order"}, {"memory": "first-order"}, {"memory": "checkpoint"}, {"first_order": True}])
def test_implicit_settings_without_implicit_memory_are_refused(cls, option, memory):
    """iMAML's solver settings would be ignored by any other memory option."""
    (name,) = option
    with pytest.raises(ValueError, match=rf"{name} is a setting of iMAML's implicit solve.*use memory='implicit'"):
        cls(tiny_classifier(), **memory, **option)


def test_every_ignored_implicit_setting_is_named():
    with pytest.raises(ValueError, match="implicit_lambda and cg_steps are settings of iMAML's implicit solve, which memory='first-order'"):
        lf.MAML(tiny_classifier(), first_order=True, implicit_lambda=2.0, cg_steps=3)


def test_implicit_settings_reach_the_implicit_solve():
    maml = lf.MAML(tiny_classifier(), memory="implicit", implicit_lambda=2.0, cg_steps=3, cg_damping=0.1)
    assert (maml.inner.implicit.lam, maml.inner.implicit.cg_steps, maml.inner.implicit.damping) == (2.0, 3, 0.1)
    default = lf.MAML(tiny_classifier(), memory="implicit").inner.implicit
    assert (default.lam, default.cg_steps, default.damping) == (1.0, 5, 0.0)


def test_single_task_needs_batch_dimension():
    maml = lf.MAML(tiny_classifier())
    task = lf.task_at(batch(), 0)
    with pytest.raises(ValueError, match="task.unsqueeze"):
        maml(task)
    assert maml(task.unsqueeze()).shape[0] == 1
