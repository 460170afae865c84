"""Meta Networks: one forward pass and no optimiser, meta-information against per-example autograd,
fast weights from the support set (class relabelling permutes the logits), batched == per-task with
BatchNorm, no leakage, gradients to every meta-parameter, any number of ways, configs, errors."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import learnfast as lf
from learnfast.algorithms import ALGORITHMS, MetaNet
from learnfast.algorithms.metanet import base_features, meta_information
from learnfast.functional import prototypes
from learnfast.train.build import build_algorithm
from learnfast.train.config import load_config
from learnfast.train.evaluate import evaluate
from conftest import assert_no_leak_between_tasks, blob_tasks, image_tasks

DIM = 6


def tiny_metanet(seed=0, **kwargs):
    torch.manual_seed(seed)
    return MetaNet(lf.MLP(in_features=DIM, hidden=(8,), out_features=5).double(), base_hidden=4, generator_hidden=5, **kwargs)


def blobs(batch_size=3, seed=0, ways=3, shots=2, queries=3):
    return blob_tasks(batch_size, torch.Generator().manual_seed(seed), ways=ways, shots=shots, queries=queries, dim=DIM,
                      dtype=torch.float64)


class Counter:
    def __init__(self, module):
        self.calls = 0
        module.register_forward_hook(self)

    def __call__(self, module, inputs, output):
        self.calls += 1


def test_one_forward_pass_no_inner_loop_no_optimiser_state():
    metanet = tiny_metanet()
    batch = blobs()
    counters = [Counter(metanet.model)] + [Counter(g) for g in metanet.generators.values()]
    state = {k: v.clone() for k, v in metanet.state_dict().items()}
    metanet.eval()
    with torch.no_grad():  # the support gradients (torch.func) still work under no_grad
        logits = metanet(batch)
    assert logits.shape == (3, 9, 3) and not logits.requires_grad
    tasks = batch.support_x.shape[0]  # per_task on CPU calls the embedding once per task
    assert [c.calls for c in counters] == [tasks, 1, 1, 1]  # the embedding once per task, each generator once
    assert all(torch.equal(state[k], v) for k, v in metanet.state_dict().items())
    assert torch.allclose(metanet(batch), logits, atol=1e-14, rtol=0)  # same with autograd on
    assert not any(isinstance(v, torch.optim.Optimizer) for v in vars(metanet).values())
    with pytest.raises(ValueError, match="does not adapt by gradient steps"):
        evaluate(metanet, type("Source", (), {"sample": lambda self, n, g: blobs(n)})(), "accuracy", episodes=2, inner_steps=1)


def test_meta_information_is_each_support_examples_loss_gradient():
    metanet = tiny_metanet()
    batch = blobs()
    z = metanet.model(batch.support_x)  # (B, S, D): no BatchNorm in this model
    slow = {"weight": metanet.base.weight, "bias": metanet.base.bias}
    classes = torch.randn(3, 3, 4, dtype=torch.float64)
    grads, class_grads = meta_information(slow, classes, z, batch.support_y)
    assert grads["weight"].shape == (3, 6, 4, 5) and grads["bias"].shape == (3, 6, 4) and class_grads.shape == (3, 6, 3, 4)
    for t in range(3):
        for i in range(6):
            w = metanet.base.weight.detach().clone().requires_grad_()
            b = metanet.base.bias.detach().clone().requires_grad_()
            c = classes[t].clone().requires_grad_()
            features = F.relu(z[t, i].detach() @ w.T + b)
            F.cross_entropy((c @ features)[None], batch.support_y[t, i][None]).backward()
            assert torch.allclose(grads["weight"][t, i], w.grad, atol=1e-12)
            assert torch.allclose(grads["bias"][t, i], b.grad, atol=1e-12)
            assert torch.allclose(class_grads[t, i], c.grad, atol=1e-12)
            # the closed form of the output-weight gradient: (softmax - onehot) features^T
            p = (classes[t] @ features).softmax(-1) - F.one_hot(batch.support_y[t, i], 3)
            assert torch.allclose(class_grads[t, i], p[:, None] * features[None], atol=1e-12)


def test_relabelling_the_classes_permutes_the_logits():
    metanet = tiny_metanet()
    batch = blobs(ways=4, shots=2, queries=2)
    perm = torch.tensor([2, 0, 3, 1])  # class c is called perm[c]
    relabelled = lf.Task(batch.support_x, perm[batch.support_y], batch.query_x, perm[batch.query_y])
    logits, permuted = metanet(batch), metanet(relabelled)
    assert torch.allclose(permuted[..., perm], logits, atol=1e-12, rtol=0)
    # reordering the support items changes nothing either
    order = torch.randperm(8, generator=torch.Generator().manual_seed(0))
    reordered = lf.Task(batch.support_x[:, order], batch.support_y[:, order], batch.query_x, batch.query_y)
    assert torch.allclose(metanet(reordered), logits, atol=1e-12, rtol=0)


def test_generated_weights_depend_on_the_support_set():
    metanet = tiny_metanet()
    batch = blobs()
    logits = metanet(batch)
    other = blobs(seed=1)
    swapped = lf.Task(other.support_x, batch.support_y, batch.query_x, batch.query_y)
    assert not torch.allclose(metanet(swapped), logits, atol=1e-6)
    # the fast path matters: zero generators leave only the slow, imprinted classifier
    with torch.no_grad():
        for generator in metanet.generators.values():
            generator[-1].weight.zero_()
            if generator[-1].bias is not None:
                generator[-1].bias.zero_()
    slow_only = metanet(batch)
    z = metanet.model(torch.cat([batch.support_x, batch.query_x], 1))
    slow = {"weight": metanet.base.weight, "bias": metanet.base.bias}
    features = base_features(slow, z)
    protos = prototypes(features[:, :6], batch.support_y, 3)
    assert torch.allclose(slow_only, features[:, 6:] @ protos.transpose(1, 2), atol=1e-12)
    assert not torch.allclose(slow_only, logits, atol=1e-6)


def test_any_number_of_ways():
    metanet = tiny_metanet()
    assert metanet(blobs(ways=2)).shape == (3, 6, 2)
    assert metanet(blobs(ways=7, shots=1)).shape == (3, 21, 7)


def bn_metanet():
    torch.manual_seed(0)
    return MetaNet(lf.Conv4(hidden=4, strided=True).double(), base_hidden=4, generator_hidden=5, in_shape=(1, 16, 16))


def test_batched_equals_per_task_with_batchnorm():
    metanet = bn_metanet()
    batch = image_tasks(3, torch.Generator().manual_seed(0), ways=3, shots=2, queries=2, size=16)
    batched = metanet(batch)
    metanet.meta_loss(batch).loss.backward()
    batched_grads = {k: p.grad.clone() for k, p in metanet.named_parameters()}
    metanet.zero_grad()
    looped = 0
    for t in range(3):
        single = lf.task_at(batch, slice(t, t + 1))
        assert torch.allclose(metanet(single)[0], batched[t], atol=1e-10, rtol=0)
        looped = looped + metanet.meta_loss(single).loss / 3
    looped.backward()
    for k, p in metanet.named_parameters():
        assert torch.allclose(batched_grads[k], p.grad, atol=1e-10, rtol=0), k


def test_no_statistics_leak_between_tasks():
    metanet = bn_metanet()
    batch = image_tasks(3, torch.Generator().manual_seed(0), ways=3, shots=2, queries=2, size=16)
    assert_no_leak_between_tasks(metanet, batch)


def test_gradients_reach_every_meta_parameter():
    metanet = bn_metanet()
    batch = image_tasks(2, torch.Generator().manual_seed(1), ways=3, shots=2, queries=2, size=16)
    out = metanet.meta_loss(batch)
    assert torch.isfinite(out.loss) and out.predictions.shape == (2, 6, 3)
    out.loss.backward()
    names = {k for k, _ in metanet.named_parameters()}
    assert {"log_scale", "base.weight", "base.bias"} <= names and any(k.startswith("generators.classes.") for k in names)
    for k, p in metanet.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), k
        if not (k.endswith(".0.bias") and ".features." in k):  # conv biases before BatchNorm cancel exactly
            assert p.grad.abs().sum() > 0, f"{k} has an all-zero gradient"


def test_meta_gradient_through_the_support_gradients_passes_gradcheck():
    """The meta-gradient flows through the support gradients (torch.func.grad, second order) into the slow weights."""
    metanet = tiny_metanet()
    batch = blobs(batch_size=2)

    def query_loss(base_weight, generator_weight):
        params = {"base.weight": base_weight, "generators.weight.0.weight": generator_weight}
        logits = torch.func.functional_call(metanet, params, (batch,), strict=False)
        return F.cross_entropy(logits.flatten(0, 1), batch.query_y.flatten())

    inputs = (metanet.base.weight.detach().clone().requires_grad_(), metanet.generators["weight"][0].weight.detach().clone().requires_grad_())
    assert torch.autograd.gradcheck(query_loss, inputs)


@pytest.mark.parametrize("name, ways", [("metanet-omniglot-5w1s", 5), ("metanet-omniglot-20w1s", 20)])
def test_registered_and_configs_build(name, ways):
    assert ALGORITHMS["metanet"] is MetaNet and MetaNet.needs_head is False
    cfg = load_config(name)
    assert cfg.train.ways == cfg.eval.ways == ways and cfg.eval.shots == 1
    metanet = build_algorithm(cfg)
    assert isinstance(metanet, MetaNet) and metanet.base.in_features == 64 and metanet.base.out_features == 64
    batch = image_tasks(1, torch.Generator().manual_seed(0), ways=ways, shots=1, queries=1, dtype=torch.float32)
    with torch.no_grad():
        assert metanet(batch).shape == (1, ways, ways)


def test_error_messages():
    encoder = lf.MLP(in_features=DIM, hidden=(8,), out_features=5)
    with pytest.raises(ValueError, match="base_hidden must be a positive integer"):
        MetaNet(encoder, base_hidden=0)
    with pytest.raises(ValueError, match="generator_hidden must be a positive integer"):
        MetaNet(encoder, generator_hidden=0)
    with pytest.raises(ValueError, match="attention_scale must be > 0"):
        MetaNet(encoder, attention_scale=0.0)
    with pytest.raises(ValueError, match="pass in_shape="):
        MetaNet(nn.Identity())
    assert MetaNet(nn.Identity(), in_shape=(DIM,)).base.in_features == DIM
    with pytest.raises(ValueError, match="leading task dimension"):
        tiny_metanet()(lf.task_at(blobs(), 0))
