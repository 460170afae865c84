"""Meta-SGD: constant rates == MAML, the rates' gradient by hand, vmap == loop (rates included)."""
import copy

import pytest
import torch
import torch.nn.functional as F

import learnfast as lf
from learnfast.algorithms import ALGORITHMS
from learnfast.algorithms.metasgd import LearnedRates, MetaSGD
from learnfast.train.build import build_algorithm
from learnfast.train.config import load_config
from conftest import blob_tasks, bn_conv4, image_tasks, tiny_mlp

DT = torch.float64
TOL = 1e-10


mlp = tiny_mlp


conv4 = bn_conv4


def blobs(seed=0, size=3):
    return blob_tasks(size, torch.Generator().manual_seed(seed), dtype=DT)


def grads_of(algorithm, tasks):
    out = algorithm.meta_loss(tasks)
    out.loss.backward()
    return out, {k: p.grad for k, p in algorithm.named_parameters()}


def randomise_rates(metasgd, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for rate in metasgd.inner_lrs.parameters():
            rate.copy_(0.05 + 0.5 * torch.rand(rate.shape, generator=g, dtype=rate.dtype))


def test_rates_mirror_the_model_parameters():
    model = lf.Conv4(hidden=4, out_features=5)
    metasgd = MetaSGD(model, inner_lr=0.3)
    rates = metasgd.inner_lrs.as_dict()
    assert list(rates) == [k for k, _ in model.named_parameters()]
    for k, p in model.named_parameters():
        assert rates[k].shape == p.shape and torch.all(rates[k] == 0.3), k
    names = set(metasgd.meta_params())
    assert "inner_lrs.features.0.0.weight" in names and "model.features.0.0.weight" in names
    assert len(names) == 2 * len(rates)
    assert "inner_lrs.head.bias" in metasgd.state_dict()


def test_rates_skip_frozen_parameters_and_follow_dtype():
    model = mlp()
    model.net[0].bias.requires_grad_(False)
    rates = LearnedRates(model, 0.1).as_dict()
    assert "net.0.bias" not in rates and rates["net.0.weight"].dtype == DT


@pytest.mark.parametrize("strategy", ["loop", "vmap"])
@pytest.mark.parametrize("steps", [1, 2])
def test_constant_rates_equal_maml(strategy, steps):
    model, tasks = mlp(), blobs()
    metasgd = MetaSGD(copy.deepcopy(model), inner_lr=0.3, inner_steps=steps, strategy=strategy)
    maml = lf.MAML(copy.deepcopy(model), inner_lr=0.3, inner_steps=steps, strategy=strategy)
    assert torch.allclose(metasgd(tasks), maml(tasks), atol=1e-13, rtol=0)
    out_s, grads_s = grads_of(metasgd, tasks)
    out_m, grads_m = grads_of(maml, tasks)
    assert torch.allclose(out_s.loss, out_m.loss, atol=1e-13, rtol=0)
    assert torch.allclose(out_s.predictions, out_m.predictions, atol=1e-13, rtol=0)
    for k, g in grads_m.items():
        assert torch.allclose(grads_s[k], g, atol=1e-12, rtol=0), k


@pytest.mark.parametrize("strategy", ["loop", "vmap"])
def test_frozen_rates_equal_maml_and_stay_put(strategy):
    """Rates frozen with requires_grad_(False) are no meta-parameters but still set the inner step."""
    model, tasks = mlp(), blobs()
    metasgd = MetaSGD(copy.deepcopy(model), inner_lr=0.3, inner_steps=2, strategy=strategy)
    metasgd.inner_lrs.requires_grad_(False)
    assert not any(k.startswith("inner_lrs.") for k in metasgd.meta_params())
    _, grads_s = grads_of(metasgd, tasks)
    _, grads_m = grads_of(lf.MAML(copy.deepcopy(model), inner_lr=0.3, inner_steps=2, strategy=strategy), tasks)
    for k, g in grads_m.items():
        assert torch.allclose(grads_s[k], g, atol=1e-12, rtol=0), k
    assert all(r.grad is None for r in metasgd.inner_lrs.parameters())


def test_rates_gradient_by_hand():
    """One step, phi = theta - alpha * g: dL/dalpha = -g * dL/dphi, averaged over tasks."""
    model, tasks = mlp(), blobs()
    metasgd = MetaSGD(copy.deepcopy(model), inner_lr=0.3, inner_steps=1)
    randomise_rates(metasgd)
    _, grads = grads_of(metasgd, tasks)
    rates = metasgd.inner_lrs.as_dict()
    expected = {k: torch.zeros_like(r) for k, r in rates.items()}
    theta = lf.params_of(model)
    for t in range(tasks.batch_size):
        support = F.cross_entropy(model(tasks.support_x[t]), tasks.support_y[t])
        g = dict(zip(theta, torch.autograd.grad(support, list(theta.values()))))
        phi = {k: (theta[k] - rates[k] * g[k]).detach().requires_grad_() for k in theta}
        query = F.cross_entropy(lf.forward_with(model, phi, tasks.query_x[t]), tasks.query_y[t])
        for (k, _), d in zip(phi.items(), torch.autograd.grad(query, list(phi.values()))):
            expected[k] += -g[k] * d / tasks.batch_size
    for k in rates:
        assert grads["inner_lrs." + k].abs().max() > 1e-8, k
        assert torch.allclose(grads["inner_lrs." + k], expected[k], atol=1e-13, rtol=0), k


def test_per_parameter_rates_set_each_step():
    model, tasks = mlp(), blobs()
    metasgd = MetaSGD(copy.deepcopy(model), inner_lr=0.3, inner_steps=2)
    randomise_rates(metasgd)
    rates = {k: r.detach() for k, r in metasgd.inner_lrs.as_dict().items()}
    fast = lf.adapt(model, lf.params_of(model), tasks.support_x[1], tasks.support_y[1], F.cross_entropy, 2, lf.sgd(rates))
    assert torch.allclose(metasgd(tasks)[1], lf.forward_with(model, fast, tasks.query_x[1]), atol=1e-13, rtol=0)
    assert not torch.allclose(metasgd(tasks), lf.MAML(copy.deepcopy(model), inner_lr=0.3, inner_steps=2)(tasks), atol=1e-6)


@pytest.mark.parametrize("strided", [True, False], ids=["strided", "maxpool"])
@pytest.mark.parametrize("steps", [1, 2])
def test_vmap_meta_gradient_equals_loop_including_rates(strided, steps):
    model = conv4(strided)
    tasks = image_tasks(3, torch.Generator().manual_seed(1))
    results = {}
    for strategy in ("loop", "vmap"):
        metasgd = MetaSGD(copy.deepcopy(model), inner_lr=0.3, inner_steps=steps, strategy=strategy)
        randomise_rates(metasgd)
        results[strategy] = grads_of(metasgd, tasks)
    (out_loop, loop), (out_vmap, vmapped) = results["loop"], results["vmap"]
    rate_grads = [g for k, g in loop.items() if k.startswith("inner_lrs.")]
    assert len(rate_grads) == len(loop) // 2 and max(g.abs().max().item() for g in rate_grads) > 1e-3
    assert max((vmapped[k] - loop[k]).abs().max().item() for k in loop) < TOL
    assert abs(out_loop.loss.item() - out_vmap.loss.item()) < TOL
    assert (out_loop.predictions - out_vmap.predictions).abs().max().item() < TOL


def test_outer_step_trains_the_rates():
    metasgd = MetaSGD(mlp(), inner_lr=0.3)
    before = copy.deepcopy(metasgd.inner_lrs.state_dict())
    opt = torch.optim.Adam(metasgd.parameters(), lr=1e-2)
    metasgd.meta_loss(blobs()).loss.backward()
    opt.step()
    assert all(not torch.equal(before[k], v) for k, v in metasgd.inner_lrs.state_dict().items())


def test_constructor_errors():
    with pytest.raises(ValueError, match="inner_steps and eval_inner_steps must be >= 0"):
        MetaSGD(mlp(), eval_inner_steps=-1)
    with pytest.raises(ValueError, match="unknown strategy 'fast'"):
        MetaSGD(mlp(), strategy="fast")


@pytest.mark.parametrize("name, lr", [("metasgd-omniglot-5w1s", 0.4), ("metasgd-sinusoid", 0.01)])
def test_registered_and_named_configs_build(name, lr):
    assert ALGORITHMS["metasgd"] is MetaSGD
    metasgd = build_algorithm(load_config(name))
    assert isinstance(metasgd, MetaSGD) and (metasgd.inner_steps, metasgd.eval_inner_steps) == (1, 1)
    assert all(torch.all(r == lr) for r in metasgd.inner_lrs.parameters())
