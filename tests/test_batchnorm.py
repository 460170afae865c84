"""BatchNorm policies: "support" equals normalising the query with the support statistics layer by
layer, each query is predicted alone, "per-step" equals a hand-written per-step loop, no policy
leaks statistics between tasks, and vmap == loop for each."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import learnfast as lf
from learnfast.algorithms.reptile import Reptile
from learnfast.batchnorm import BN_POLICIES, norm_keys, predict_query
from conftest import assert_no_leak_between_tasks, bn_conv4, image_tasks, tiny_mlp

DT = torch.float64
TOL = 1e-10
METHODS = {"maml": lf.MAML, "anil": lf.ANIL, "metasgd": lf.MetaSGD}


def tasks(seed=1, size=3):
    return image_tasks(size, torch.Generator().manual_seed(seed))


def support_statistics_oracle(model, params, support_x, query_x):
    """Conv4 run layer by layer: every BatchNorm normalises support and query with the support batch's statistics."""
    module = copy.deepcopy(model)
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(params[name])
    s, q = support_x, query_x
    for block in module.features:
        for layer in block:
            if isinstance(layer, nn.BatchNorm2d):
                mean, var = s.mean((0, 2, 3)), s.var((0, 2, 3), unbiased=False)
                s, q = (F.batch_norm(t, mean, var, layer.weight, layer.bias, training=False, eps=layer.eps) for t in (s, q))
            else:
                s, q = layer(s), layer(q)
    features = q.mean((2, 3)) if module.strided else q.flatten(1)
    return module.head(features)


@pytest.mark.parametrize("strided", [True, False], ids=["strided", "maxpool"])
@pytest.mark.parametrize("steps", [0, 2])
def test_support_policy_equals_layerwise_oracle(strided, steps):
    model, batch = bn_conv4(strided), tasks()
    maml = lf.MAML(copy.deepcopy(model), inner_lr=0.4, inner_steps=steps, bn="support")
    with torch.no_grad():
        predictions = maml(batch)
    for t in range(batch.batch_size):
        fast = lf.adapt(model, lf.params_of(model), batch.support_x[t], batch.support_y[t], F.cross_entropy, steps, lf.sgd(0.4))
        with torch.no_grad():
            expected = support_statistics_oracle(model, fast, batch.support_x[t], batch.query_x[t])
        assert torch.allclose(predictions[t], expected, atol=1e-10, rtol=0)
    transductive = lf.MAML(copy.deepcopy(model), inner_lr=0.4, inner_steps=steps)(batch)
    assert not torch.allclose(predictions, transductive, atol=1e-4)  # the policy changes something


@pytest.mark.parametrize("name", sorted(METHODS))
@pytest.mark.parametrize("strategy", ["loop", "vmap"])
def test_support_policy_predicts_each_query_alone(name, strategy):
    """Changing one query image changes its prediction only; under "transductive" it moves the others too."""
    model, batch = bn_conv4(strided=False), tasks()
    changed = lf.Task(batch.support_x, batch.support_y, batch.query_x.clone(), batch.query_y)
    changed.query_x[1, 0] = changed.query_x[1, 0] * 3 + 1
    for bn in ("support", "transductive"):
        algorithm = METHODS[name](copy.deepcopy(model), inner_steps=2, bn=bn, strategy=strategy)
        before, after = algorithm(batch), algorithm(changed)
        assert not torch.allclose(after[1, 0], before[1, 0], atol=1e-6)
        others_unchanged = torch.allclose(after[1, 1:], before[1, 1:], atol=1e-12, rtol=0)
        assert others_unchanged == (bn == "support"), bn
        assert torch.allclose(after[[0, 2]], before[[0, 2]], atol=1e-12, rtol=0)


@pytest.mark.parametrize("name", sorted(METHODS))
@pytest.mark.parametrize("bn", BN_POLICIES)
@pytest.mark.parametrize("strategy", ["loop", "vmap"])
def test_no_statistics_leak_between_tasks(name, bn, strategy):
    algorithm = METHODS[name](bn_conv4(strided=True), inner_steps=2, bn=bn, strategy=strategy)
    assert_no_leak_between_tasks(algorithm, tasks())


def test_hooks_are_removed_and_the_model_untouched():
    model = bn_conv4(strided=True)
    before = copy.deepcopy(model.state_dict())
    maml = lf.MAML(model, inner_steps=1, bn="support")
    maml.meta_loss(tasks()).loss.backward()
    assert all(not m._forward_hooks for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_support_rows_of_the_joint_forward_equal_a_support_forward():
    model, batch = bn_conv4(strided=False), tasks()
    params = lf.params_of(model)
    joint = predict_query(model, params, batch.support_x[0], batch.support_x[0], "support")  # query := support
    assert torch.allclose(joint, model(batch.support_x[0]), atol=1e-12, rtol=0)


# -- per-step ---------------------------------------------------------------------------------

def per_step_oracle(model, sets, task, inner_lr, steps):
    """Hand-written MAML++ per-step BN: step k forwards with set k (clamped), BN parameters never adapt."""
    params = dict(model.named_parameters())
    bn = set(norm_keys(model))
    fast = {k: v for k, v in params.items() if k not in bn}
    at = lambda k: sets[min(k, len(sets) - 1)]
    for k in range(steps):
        loss = F.cross_entropy(lf.forward_with(model, {**params, **fast, **at(k)}, task.support_x), task.support_y)
        grads = torch.autograd.grad(loss, list(fast.values()), create_graph=True)
        fast = {name: v - inner_lr * g for (name, v), g in zip(fast.items(), grads)}
    return lf.forward_with(model, {**params, **fast, **at(steps)}, task.query_x)


def randomise(module, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype))


@pytest.mark.parametrize("steps,eval_steps", [(2, None), (1, 3)])
def test_per_step_equals_hand_written_loop(steps, eval_steps):
    model, batch = bn_conv4(strided=True), tasks(size=2)
    maml = lf.MAML(copy.deepcopy(model), inner_lr=0.4, inner_steps=steps, eval_inner_steps=eval_steps, bn="per-step")
    n_sets = steps  # one copy per training step; test-time steps beyond reuse the last
    assert sorted({k.split(".")[2] for k in maml.meta_params() if k.startswith("step_norms.")}) == [str(s) for s in range(1, n_sets + 1)]
    randomise(maml.step_norms, seed=0)  # copies start equal to the model's; make them differ
    out = maml.meta_loss(batch)
    out.loss.backward()

    model_oracle = copy.deepcopy(model)
    sets = [{}] + [{k: v.detach().clone().requires_grad_() for k, v in maml.step_norms.copies[str(s)].as_dict().items()}
                   for s in range(1, n_sets + 1)]
    loss = torch.stack([F.cross_entropy(per_step_oracle(model_oracle, sets, lf.task_at(batch, t), 0.4, steps), batch.query_y[t])
                        for t in range(batch.batch_size)]).mean()
    loss.backward()
    assert abs(loss.item() - out.loss.item()) < TOL
    for name, p in model_oracle.named_parameters():
        assert torch.allclose(maml.model.get_parameter(name).grad, p.grad, atol=TOL, rtol=0), name
    for s in range(1, n_sets + 1):
        for k, p in maml.step_norms.copies[str(s)].as_dict().items():
            assert p.grad.abs().sum() > 0 and torch.allclose(p.grad, sets[s][k].grad, atol=TOL, rtol=0), (s, k)
    maml.eval()  # eval_inner_steps may run past the last copy: it is reused
    expected = per_step_oracle(model_oracle, sets, lf.task_at(batch, 0), 0.4, maml.eval_inner_steps)
    assert torch.allclose(maml(batch)[0], expected, atol=TOL, rtol=0)


@pytest.mark.parametrize("name", sorted(METHODS))
@pytest.mark.parametrize("bn", ["support", "per-step"])
def test_vmap_equals_loop_for_bn_policies(name, bn):
    model, batch = bn_conv4(strided=True), tasks()
    grads = {}
    for strategy in ("loop", "vmap"):
        algorithm = METHODS[name](copy.deepcopy(model), inner_steps=2, bn=bn, strategy=strategy)
        if bn == "per-step":
            randomise(algorithm.step_norms, seed=1)
        algorithm.meta_loss(batch).loss.backward()
        grads[strategy] = {k: p.grad for k, p in algorithm.named_parameters()}
    assert max(g.abs().max().item() for g in grads["loop"].values()) > 1e-3
    for k, g in grads["loop"].items():
        assert torch.allclose(grads["vmap"][k], g, atol=TOL, rtol=0), k


def test_per_step_needs_batchnorm():
    with pytest.raises(ValueError, match="needs BatchNorm layers"):
        lf.MAML(tiny_mlp(), bn="per-step")


# -- Reptile -------------------------------------------------------------------------------------

def test_reptile_support_policy_predicts_each_query_alone():
    model, batch = bn_conv4(strided=False), tasks()
    reptile = Reptile(model, inner_lr=0.1, inner_steps=2, bn="support")
    changed = lf.Task(batch.support_x, batch.support_y, batch.query_x.clone(), batch.query_y)
    changed.query_x[0, 0] = -changed.query_x[0, 0]
    with torch.no_grad():
        before, after = reptile(batch), reptile(changed)
    assert not torch.allclose(after[0, 0], before[0, 0], atol=1e-6)
    assert torch.allclose(after[0, 1:], before[0, 1:], atol=1e-12, rtol=0)
    assert torch.allclose(after[1:], before[1:], atol=1e-12, rtol=0)


def test_reptile_rejects_per_step():
    with pytest.raises(ValueError, match="bn='transductive' or 'support'"):
        Reptile(bn_conv4(), bn="per-step")


@pytest.mark.parametrize("name", sorted(METHODS))
def test_per_step_gradient_reaches_every_meta_parameter(name):
    """As the contract asks of the default: every copy is trained (conv biases aside, which BatchNorm cancels)."""
    algorithm = METHODS[name](bn_conv4(strided=True), inner_steps=2, eval_inner_steps=4, bn="per-step")
    algorithm.meta_loss(tasks()).loss.backward()
    for k, p in algorithm.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), k
        if not (k.endswith(".0.bias") and ".features." in k):
            assert p.grad.abs().sum() > 0, k
