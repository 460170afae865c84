"""ANIL: MAML with only the head adapting (oracle: ``adapt(..., adapt_keys=head)`` by hand), the
backbone's second-order meta-gradient, vmap == loop through BatchNorm, head selection and its errors."""
import copy

import pytest
import torch
import torch.nn.functional as F

import learnfast as lf
from learnfast.algorithms import ALGORITHMS
from learnfast.algorithms.anil import ANIL
from learnfast.train.build import build_algorithm
from learnfast.train.config import load_config
from conftest import blob_tasks, bn_conv4, image_tasks, tiny_mlp

DT = torch.float64
TOL = 1e-10


mlp = tiny_mlp


conv4 = bn_conv4


def blobs(seed=0, size=3):
    return blob_tasks(size, torch.Generator().manual_seed(seed), dtype=DT)


def head_only_maml(model, tasks, head_keys, inner_lr, steps, first_order=False):
    """The oracle: per task, ``adapt`` with ``adapt_keys=head_keys``; mean query loss; autograd meta-gradient."""
    params = lf.params_of(model)
    losses, predictions = [], []
    for t in range(tasks.batch_size):
        fast = lf.adapt(model, params, tasks.support_x[t], tasks.support_y[t], F.cross_entropy, steps,
                        lf.sgd(inner_lr), adapt_keys=head_keys, first_order=first_order)
        out = lf.forward_with(model, fast, tasks.query_x[t])
        predictions.append(out)
        losses.append(F.cross_entropy(out, tasks.query_y[t]))
    loss = torch.stack(losses).mean()
    grads = torch.autograd.grad(loss, list(params.values()))
    return loss.detach(), torch.stack(predictions).detach(), dict(zip(params, grads))


def anil_grads(anil, tasks):
    out = anil.meta_loss(tasks)
    out.loss.backward()
    return out, {k[len("model."):]: p.grad for k, p in anil.named_parameters()}


def test_default_head_is_the_output_layer():
    assert ANIL(lf.Conv4(hidden=4, out_features=5)).head_keys == ("head.weight", "head.bias")
    assert ANIL(lf.MLP(hidden=(8, 8))).head_keys == ("net.4.weight", "net.4.bias")
    assert ANIL(lf.MLP(hidden=(8, 8)), head="net.2").head_keys == ("net.2.weight", "net.2.bias")
    assert ANIL(lf.Conv4(hidden=4, out_features=5), head="head.").head_keys == ("head.weight", "head.bias")


def test_head_errors():
    with pytest.raises(ValueError, match=r"head='classifier' names no module.*'net.0', 'net.2'"):
        ANIL(mlp(), head="classifier")
    with pytest.raises(ValueError, match="no trainable parameters"):
        ANIL(torch.nn.ReLU())
    with pytest.raises(ValueError, match="inner_steps and eval_inner_steps must be >= 0"):
        ANIL(mlp(), inner_steps=-1)


@pytest.mark.parametrize("strategy", ["loop", "vmap"])
@pytest.mark.parametrize("steps", [1, 2])
@pytest.mark.parametrize("first_order", [False, True], ids=["second", "first"])
def test_equals_maml_with_only_the_head_adapting(strategy, steps, first_order):
    model, tasks = mlp(), blobs()
    anil = ANIL(copy.deepcopy(model), inner_lr=0.5, inner_steps=steps, first_order=first_order, strategy=strategy)
    out, grads = anil_grads(anil, tasks)
    loss, predictions, expected = head_only_maml(model, tasks, ["net.2.weight", "net.2.bias"], 0.5, steps, first_order)
    assert torch.allclose(out.loss, loss, atol=1e-13, rtol=0)
    assert torch.allclose(out.predictions, predictions, atol=1e-13, rtol=0)
    assert torch.allclose(anil(tasks), predictions, atol=1e-13, rtol=0)
    for k in expected:
        assert torch.allclose(grads[k], expected[k], atol=1e-12, rtol=0), k


def test_differs_from_maml():
    """Not vacuous: adapting only the head gives other predictions than adapting everything."""
    model, tasks = mlp(), blobs()
    anil = ANIL(copy.deepcopy(model), inner_lr=0.5, inner_steps=2)
    maml = lf.MAML(copy.deepcopy(model), inner_lr=0.5, inner_steps=2)
    assert not torch.allclose(anil(tasks), maml(tasks), atol=1e-6)


def test_backbone_gets_second_order_meta_gradient():
    """The backbone never adapts, yet its meta-gradient carries the head's inner steps (second order)."""
    model = conv4()
    tasks = image_tasks(2, torch.Generator().manual_seed(0), size=16)
    _, second = anil_grads(ANIL(copy.deepcopy(model), inner_lr=0.4, inner_steps=2), tasks)
    _, first = anil_grads(ANIL(copy.deepcopy(model), inner_lr=0.4, inner_steps=2, first_order=True), tasks)
    _, _, expected = head_only_maml(model, tasks, ["head.weight", "head.bias"], 0.4, 2)
    backbone = [k for k in second if not k.startswith("head.")]
    assert len(backbone) == 16
    for k in backbone:
        assert torch.allclose(second[k], expected[k], atol=1e-12, rtol=0), k
        if not k.endswith(".0.bias"):  # conv biases: cancelled by BatchNorm's mean subtraction
            assert second[k].abs().max() > 1e-6, k
    # the second-order terms are there: dropping them changes the backbone's meta-gradient
    assert max((second[k] - first[k]).abs().max().item() for k in backbone) > 1e-6


@pytest.mark.parametrize("strided", [True, False], ids=["strided", "maxpool"])
@pytest.mark.parametrize("steps", [1, 3])
def test_vmap_meta_gradient_equals_loop_with_batchnorm(strided, steps):
    model = conv4(strided)
    tasks = image_tasks(3, torch.Generator().manual_seed(1))
    out_loop, loop = anil_grads(ANIL(copy.deepcopy(model), inner_lr=0.4, inner_steps=steps, strategy="loop"), tasks)
    out_vmap, vmapped = anil_grads(ANIL(copy.deepcopy(model), inner_lr=0.4, inner_steps=steps, strategy="vmap"), tasks)
    assert max(g.abs().max().item() for g in loop.values()) > 1e-3  # not a vacuous comparison
    assert max((vmapped[k] - loop[k]).abs().max().item() for k in loop) < TOL
    assert abs(out_loop.loss.item() - out_vmap.loss.item()) < TOL
    assert (out_loop.predictions - out_vmap.predictions).abs().max().item() < TOL


def test_zero_inner_steps_is_the_plain_model():
    model, tasks = mlp(), blobs()
    predictions = ANIL(copy.deepcopy(model), inner_steps=0)(tasks)
    for t in range(tasks.batch_size):
        assert torch.allclose(predictions[t], model(tasks.query_x[t]), atol=1e-14, rtol=0)


def test_eval_inner_steps_and_frozen_head_parameter():
    model, tasks = mlp(), blobs()
    anil = ANIL(copy.deepcopy(model), inner_lr=0.5, inner_steps=1, eval_inner_steps=3)
    anil.eval()
    assert anil.default_steps() == 3 and torch.equal(anil(tasks), anil(tasks, inner_steps=3))
    # a head parameter frozen after construction stays fixed instead of failing
    anil.model.net[2].bias.requires_grad_(False)
    fast = lf.adapt(model, lf.params_of(model), tasks.support_x[0], tasks.support_y[0], F.cross_entropy, 3,
                    lf.sgd(0.5), adapt_keys=["net.2.weight"])
    assert torch.allclose(anil(tasks)[0], lf.forward_with(model, fast, tasks.query_x[0]), atol=1e-13, rtol=0)


def test_registered_and_named_config_builds():
    assert ALGORITHMS["anil"] is ANIL
    cfg = load_config("anil-omniglot-5w1s")
    anil = build_algorithm(cfg)
    assert isinstance(anil, ANIL) and anil.head_keys == ("head.weight", "head.bias")
    assert (anil.inner_lr, anil.inner_steps, anil.eval_inner_steps) == (0.4, 1, 3)
