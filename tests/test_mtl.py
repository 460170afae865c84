"""Meta-transfer learning: scale 1 / shift 0 is the frozen backbone exactly, scale and shift act as
W * scale and b + shift, gradients reach them and the head initialisation but never the backbone,
vmap == loop in float64, and no statistics leak between tasks."""
import pytest
import torch
import torch.nn.functional as F

import learnfast as lf
from learnfast.algorithms.mtl import MTL
from conftest import assert_no_leak_between_tasks, blob_tasks, bn_conv4, image_tasks

DT = torch.float64


def conv4(seed=0):
    """Float64 Conv4 features with non-trivial BatchNorm affine parameters and conv biases."""
    return bn_conv4(strided=False, seed=seed, out_features=None)


def images(seed=0, size=3, ways=3):
    return image_tasks(size, torch.Generator().manual_seed(seed), ways=ways, shots=2, queries=2, size=16, dtype=DT)


def test_parameters_and_their_shapes():
    mtl = MTL(conv4(), ways=3).double()
    names = dict(mtl.named_parameters())
    assert names["scale.features.0.0.weight"].shape == (4, 1, 1, 1)  # one factor per kernel
    assert names["scale.features.1.0.weight"].shape == (4, 4, 1, 1)
    assert names["shift.features.3.0.bias"].shape == (4,)
    assert names["head.weight"].shape == (3, 4) and names["head.bias"].shape == (3,)
    assert all(torch.equal(p, torch.ones_like(p)) for k, p in names.items() if k.startswith("scale."))
    assert all(torch.equal(p, torch.zeros_like(p)) for k, p in names.items() if k.startswith("shift."))
    assert set(mtl.meta_params()) == {k for k in names if not k.startswith("model.")}


def test_identity_scale_and_shift_reproduce_the_frozen_backbone_exactly():
    mtl = MTL(conv4(), ways=3, inner_steps=0).double()
    transferred = mtl.transferred(mtl.meta_params())
    for k, p in mtl.model.named_parameters():
        assert torch.equal(transferred[k], p), k
    batch = images()
    x = torch.cat([batch.support_x[1], batch.query_x[1]])
    expected = mtl.head(mtl.model(x))[batch.support_x.shape[1]:]
    assert torch.equal(mtl(batch)[1], expected)  # no inner step: the pretrained backbone + head init, bit for bit


def test_scale_and_shift_act_on_weights_and_biases():
    mtl = MTL(conv4(), ways=3, inner_steps=0).double()
    scale, shift = mtl.scale.as_dict()["features.1.0.weight"], mtl.shift.as_dict()["features.2.0.bias"]
    with torch.no_grad():
        scale.uniform_(0.5, 2.0)
        shift.uniform_(-1.0, 1.0)
    oracle = conv4()
    with torch.no_grad():
        oracle.features[1][0].weight.mul_(scale)  # (4, 4, 3, 3) * (4, 4, 1, 1)
        oracle.features[2][0].bias.add_(shift)
    transferred = mtl.transferred(mtl.meta_params())
    assert torch.equal(transferred["features.1.0.weight"], oracle.features[1][0].weight)
    assert torch.equal(transferred["features.2.0.bias"], oracle.features[2][0].bias)
    batch = images()
    x = torch.cat([batch.support_x[0], batch.query_x[0]])
    assert torch.allclose(mtl(batch)[0], mtl.head(oracle(x))[batch.support_x.shape[1]:], atol=1e-12)


def test_scale_shift_and_head_get_gradients_the_backbone_none():
    mtl = MTL(conv4(), ways=3, inner_lr=0.3, inner_steps=2).double()
    mtl.meta_loss(images()).loss.backward()
    for k, p in mtl.named_parameters():
        if k.startswith("model."):
            assert p.grad is None, f"the frozen backbone's {k} got a gradient"
        else:
            assert p.grad is not None and torch.isfinite(p.grad).all(), k
            if not k.endswith(".0.bias"):  # BatchNorm cancels a shift of the conv bias before it
                assert p.grad.abs().sum() > 0, k


def test_zero_head_init_is_not_meta_learned_and_every_task_starts_from_zero():
    mtl = MTL(conv4(), ways=3, inner_lr=0.3, inner_steps=2, learn_head_init=False).double()
    assert not any(k.startswith(("head.", "model.")) for k in mtl.meta_params())
    assert torch.equal(mtl.head.weight, torch.zeros_like(mtl.head.weight))
    opt = torch.optim.Adam(mtl.meta_params().values(), lr=0.1)
    mtl.meta_loss(images()).loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for k, p in mtl.meta_params().items() if k.startswith("scale."))
    opt.step()
    assert torch.equal(mtl.head.weight, torch.zeros_like(mtl.head.weight)) and mtl.head.weight.grad is None
    # the inner loop still fits a head: predictions differ from the zero head's uniform logits
    logits = mtl.eval()(images(), inner_steps=2)
    assert logits.std() > 0


def test_second_order_meta_gradient_flows_through_the_head_steps():
    """With one inner step, the head initialisation's gradient differs between first and second order."""
    grads = {}
    for memory in ("second-order", "first-order", "checkpoint"):
        mtl = MTL(conv4(), ways=3, inner_lr=0.5, inner_steps=1, memory=memory).double()
        mtl.meta_loss(images()).loss.backward()
        grads[memory] = mtl.head.weight.grad
    assert not torch.allclose(grads["second-order"], grads["first-order"])
    assert torch.allclose(grads["second-order"], grads["checkpoint"], atol=1e-12)


def test_vmap_equals_loop_in_float64():
    batch = images(size=3)
    results = {}
    for strategy in ("loop", "vmap"):
        mtl = MTL(conv4(), ways=3, inner_lr=0.3, inner_steps=2, strategy=strategy).double()
        with torch.no_grad():  # away from the identity, so that the scales matter
            for p in mtl.scale.parameters():
                p.uniform_(0.8, 1.2)
        out = mtl.meta_loss(batch)
        out.loss.backward()
        results[strategy] = out, {k: p.grad for k, p in mtl.meta_params().items()}
    (loop, g_loop), (vm, g_vmap) = results["loop"], results["vmap"]
    assert torch.allclose(loop.loss, vm.loss, atol=1e-12)
    assert torch.allclose(loop.predictions, vm.predictions, atol=1e-12)
    for k in g_loop:
        assert torch.allclose(g_loop[k], g_vmap[k], atol=1e-10), k


def test_inner_loop_is_sgd_on_the_head_over_frozen_features():
    lr, steps = 0.4, 3
    torch.manual_seed(0)
    mtl = MTL(lf.MLP(in_features=8, hidden=(8,), out_features=6).double(), ways=3, inner_lr=lr, inner_steps=steps).double()
    batch = blob_tasks(1, torch.Generator().manual_seed(0), dtype=DT)
    head = torch.nn.Linear(6, 3).double()
    head.load_state_dict(mtl.head.state_dict())
    with torch.no_grad():
        z = mtl.model(torch.cat([batch.support_x[0], batch.query_x[0]]))
    opt = torch.optim.SGD(head.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(head(z[:6]), batch.support_y[0]).backward()
        opt.step()
    assert torch.allclose(mtl(batch)[0], head(z[6:]).detach(), atol=1e-12)


def test_no_statistics_leak_between_tasks():
    mtl = MTL(conv4(), ways=3, inner_steps=1).double()
    assert_no_leak_between_tasks(mtl, images(size=3))


def test_pretrain_head_is_linear_over_all_classes():
    head = MTL(lf.Conv4(hidden=4)).pretrain_head(17)
    assert isinstance(head, torch.nn.Linear) and head.weight.shape == (17, 4)


def test_errors():
    with pytest.raises(ValueError, match="ways must be a positive integer"):
        MTL(conv4(), ways=0)
    with pytest.raises(ValueError, match="no convolution or linear layer"):
        MTL(torch.nn.Flatten())
    with pytest.raises(ValueError, match="bn='per-step' gives each inner step"):
        MTL(conv4(), bn="per-step")
    with pytest.raises(ValueError, match="unknown memory option 'cheap'"):
        MTL(conv4(), memory="cheap")


@pytest.mark.parametrize("option", [{"implicit_lambda": 2.0}, {"cg_steps": 3}, {"cg_damping": 0.1}])
@pytest.mark.parametrize("memory", ["second-order", "first-order", "checkpoint"])
def test_implicit_settings_without_implicit_memory_are_refused(memory, option):
    (name,) = option
    with pytest.raises(ValueError, match=rf"{name} is a setting of iMAML's implicit solve, which memory='{memory}' does not run"):
        MTL(conv4(), memory=memory, **option)
    MTL(conv4(), memory="implicit", **option)  # where they apply, they are taken


@pytest.mark.parametrize("strategy", ["threads", "auto"])  # auto is threads on CPU
def test_threads_equal_loop_in_float64(strategy):
    """MTL runs through the base class's task_loss strategies, so threads (3 workers) is honoured, not ignored."""
    batch = images(size=3)
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        results = {}
        for s in ("loop", strategy):
            mtl = MTL(conv4(), ways=3, inner_lr=0.3, inner_steps=2, strategy=s).double()
            with torch.no_grad():
                for p in mtl.scale.parameters():
                    p.uniform_(0.8, 1.2, generator=torch.Generator().manual_seed(1))
            assert mtl.execution_strategy(batch) == ("loop" if s == "loop" else "threads")
            out = mtl.meta_loss(batch)
            out.loss.backward()
            results[s] = out, {k: p.grad for k, p in mtl.meta_params().items()}
    finally:
        torch.set_num_threads(before)
    (loop, g_loop), (threads, g_threads) = results["loop"], results[strategy]
    assert torch.allclose(loop.loss, threads.loss, atol=1e-12)
    assert torch.allclose(loop.predictions, threads.predictions, atol=1e-12)
    assert max(g.abs().max().item() for g in g_loop.values()) > 1e-3
    for k in g_loop:
        assert torch.allclose(g_loop[k], g_threads[k], atol=1e-10), k
