"""Baseline / Baseline++: the cosine head against a hand-computed cosine classifier, head fitting
against torch.optim.SGD on frozen features, batched == looped, the pretraining head, and errors."""
import pytest
import torch
import torch.nn.functional as F

import learnfast as lf
from learnfast.algorithms.baseline import Baseline, CosineClassifier
from conftest import assert_no_leak_between_tasks, blob_tasks, bn_conv4, image_tasks

DT = torch.float64


def mlp_features(seed=0):
    torch.manual_seed(seed)
    return lf.MLP(in_features=8, hidden=(8,), out_features=6).double()


def bn_conv4_features(seed=0):
    """A float64 Conv4 feature backbone with non-trivial BatchNorm affine parameters."""
    return bn_conv4(strided=False, seed=seed, out_features=None)


def blobs(seed=0, size=3):
    return blob_tasks(size, torch.Generator().manual_seed(seed), dtype=DT)


def test_cosine_classifier_is_scale_times_cosine_similarity():
    torch.manual_seed(0)
    head = CosineClassifier(5, 3, scale=4.0).double()
    x = torch.randn(7, 5, dtype=DT)
    expected = torch.empty(7, 3, dtype=DT)
    for n in range(7):
        for c in range(3):
            w = head.weight[c]
            expected[n, c] = 4.0 * (x[n] @ w) / (x[n].norm() * w.norm())
    assert torch.allclose(head(x), expected, atol=1e-12)


def test_baseline_pp_without_steps_is_the_cosine_classifier_on_support_class_means():
    algorithm = Baseline(mlp_features(), classifier="cosine", inner_steps=0, scale=3.0).double()
    batch = blobs()
    logits = algorithm(batch)
    for b in range(batch.batch_size):
        z = algorithm.model(torch.cat([batch.support_x[b], batch.query_x[b]]))
        support_z, query_z = z[: batch.support_x.shape[1]], z[batch.support_x.shape[1]:]
        means = torch.stack([support_z[batch.support_y[b] == c].mean(0) for c in range(3)])
        by_hand = 3.0 * F.cosine_similarity(query_z[:, None, :], means[None, :, :], dim=-1)
        assert torch.allclose(logits[b], by_hand, atol=1e-12)


@pytest.mark.parametrize("classifier", ["linear", "cosine"])
def test_head_fitting_equals_torch_sgd_on_frozen_features(classifier):
    steps, lr = 5, 0.3
    algorithm = Baseline(mlp_features(), classifier=classifier, inner_lr=lr, inner_steps=steps).double()
    batch = blobs(size=2)
    logits = algorithm(batch)
    for b in range(2):
        with torch.no_grad():
            z = algorithm.model(torch.cat([batch.support_x[b], batch.query_x[b]]))
        s = batch.support_x.shape[1]
        if classifier == "cosine":
            head = CosineClassifier(6, 3, scale=algorithm.scale.item()).double()
            head.scale.requires_grad_(False)  # Baseline++ adapts the weights, not the scale
            with torch.no_grad():
                head.weight.copy_(torch.stack([z[:s][batch.support_y[b] == c].mean(0) for c in range(3)]))
        else:
            head = torch.nn.Linear(6, 3).double()
            torch.nn.init.zeros_(head.weight), torch.nn.init.zeros_(head.bias)
        opt = torch.optim.SGD([p for p in head.parameters() if p.requires_grad], lr=lr)
        for _ in range(steps):
            opt.zero_grad()
            F.cross_entropy(head(z[:s]), batch.support_y[b]).backward()
            opt.step()
        assert torch.allclose(logits[b], head(z[s:]).detach(), atol=1e-10)


@pytest.mark.parametrize("classifier", ["linear", "cosine"])
def test_vmap_equals_loop_with_meta_gradient_through_batchnorm(classifier):
    batch = image_tasks(3, torch.Generator().manual_seed(0), size=16)
    results = {}
    for strategy in ("loop", "vmap"):
        algorithm = Baseline(bn_conv4_features(), classifier=classifier, inner_lr=0.2, inner_steps=3, strategy=strategy).double()
        out = algorithm.meta_loss(batch)
        out.loss.backward()
        results[strategy] = out, {k: p.grad for k, p in algorithm.named_parameters()}
    (loop, g_loop), (vm, g_vmap) = results["loop"], results["vmap"]
    assert torch.allclose(loop.loss, vm.loss, atol=1e-12)
    assert torch.allclose(loop.predictions, vm.predictions, atol=1e-12)
    for k in g_loop:
        assert torch.allclose(g_loop[k], g_vmap[k], atol=1e-10), k


@pytest.mark.parametrize("memory", ["first-order", "checkpoint", "implicit"])
def test_memory_options_give_the_same_prediction(memory):
    batch = blobs()
    reference = Baseline(mlp_features(), inner_lr=0.2, inner_steps=3).double()(batch)
    other = Baseline(mlp_features(), inner_lr=0.2, inner_steps=3, memory=memory).double()(batch)
    if memory == "implicit":  # its inner problem has the proximal term: a different, still finite answer
        assert torch.isfinite(other).all() and other.shape == reference.shape
    else:
        assert torch.allclose(other, reference, atol=1e-12)


def test_support_bn_policy_makes_each_query_independent_of_the_others():
    torch.manual_seed(0)
    algorithm = Baseline(bn_conv4_features(), inner_steps=2, bn="support").double()
    batch = image_tasks(1, torch.Generator().manual_seed(0), size=16)
    changed = lf.Task(batch.support_x, batch.support_y, batch.query_x.clone(), batch.query_y)
    changed.query_x[0, 1:] = 3.0 * changed.query_x[0, 1:] + 1.0  # every query but the first
    assert torch.allclose(algorithm(batch)[0, 0], algorithm(changed)[0, 0], atol=1e-12)
    transductive = Baseline(bn_conv4_features(), inner_steps=2).double()
    assert not torch.allclose(transductive(batch)[0, 0], transductive(changed)[0, 0], atol=1e-6)


@pytest.mark.parametrize("classifier", ["linear", "cosine"])
def test_no_statistics_leak_between_tasks(classifier):
    torch.manual_seed(0)
    algorithm = Baseline(lf.Conv4(hidden=4), classifier=classifier, inner_steps=2).double()
    assert_no_leak_between_tasks(algorithm, image_tasks(3, torch.Generator().manual_seed(0), size=16))


def test_eval_steps_and_override():
    algorithm = Baseline(mlp_features(), inner_steps=2, eval_inner_steps=0).double().eval()
    batch = blobs()
    assert torch.equal(algorithm(batch), torch.zeros(3, 12, 3, dtype=DT))  # zero head, no step
    assert not torch.equal(algorithm(batch, inner_steps=2), torch.zeros(3, 12, 3, dtype=DT))


def test_pretrain_head_sizes_and_shared_scale():
    linear = Baseline(lf.Conv4(hidden=4)).pretrain_head(11)
    assert isinstance(linear, torch.nn.Linear) and linear.weight.shape == (11, 4)
    algorithm = Baseline(lf.Conv4(hidden=4), classifier="cosine", scale=5.0)
    head = algorithm.pretrain_head(11)
    assert isinstance(head, CosineClassifier) and head.weight.shape == (11, 4)
    assert head.scale is algorithm.scale  # pretraining learns the scale the per-task heads use
    assert algorithm.scale.item() == 5.0


def test_conv4_forward_shape_any_ways():
    algorithm = Baseline(lf.Conv4(hidden=4), inner_steps=2)
    for ways in (2, 5):
        batch = image_tasks(2, torch.Generator().manual_seed(0), ways=ways, shots=1, queries=2, size=28, dtype=torch.float32)
        assert algorithm(batch).shape == (2, ways * 2, ways)


def test_errors():
    with pytest.raises(ValueError, match="unknown classifier 'softmax'"):
        Baseline(mlp_features(), classifier="softmax")
    with pytest.raises(ValueError, match="feature maps of shape"):
        Baseline(lf.Conv4Maps(hidden=4)).pretrain_head(3)
    with pytest.raises(ValueError, match="inner_steps and eval_inner_steps must be >= 0"):
        Baseline(mlp_features(), inner_steps=-1)
    with pytest.raises(ValueError, match="unknown inner_optimizer 'lbfgs'"):
        Baseline(mlp_features(), inner_optimizer="lbfgs")
    with pytest.raises(ValueError, match="bn='per-step' gives each inner step"):
        Baseline(mlp_features(), bn="per-step")
    with pytest.raises(ValueError, match="memory='checkpoint' needs strategy='loop'"):
        Baseline(mlp_features(), memory="checkpoint", strategy="vmap")


@pytest.mark.parametrize("strategy", ["threads", "auto"])
def test_strategies_it_does_not_run_are_refused(strategy):
    with pytest.raises(ValueError, match=rf"Baseline cannot run strategy='{strategy}'.*\('loop', 'vmap'\)"):
        Baseline(mlp_features(), strategy=strategy)


def test_scale_is_refused_by_the_linear_classifier():
    with pytest.raises(ValueError, match=r"scale=3.0 sets the cosine classifiers' initial scale.*classifier='cosine'"):
        Baseline(mlp_features(), classifier="linear", scale=3.0)
    assert Baseline(mlp_features(), classifier="cosine").scale.item() == 10.0  # the default when not given
