"""TADAM: identity-FiLM oracle (== ProtoNet), folded FiLM == FiLM applied block by block, the task
embedding, the metric scale, batched == per-task, no BatchNorm leakage, configs, error messages."""
import pytest
import torch
from torch import nn

import learnfast as lf
from learnfast.algorithms import ALGORITHMS, TADAM
from learnfast.algorithms.tadam import default_film_layers
from learnfast.functional import prototypes, squared_distances
from learnfast.train.build import build_algorithm
from learnfast.train.config import load_config
from conftest import assert_no_leak_between_tasks, blob_tasks, bn_conv4, image_tasks

SIZE = 16


def images(batch_size=3, seed=0, ways=3, shots=2, queries=2):
    return image_tasks(batch_size, torch.Generator().manual_seed(seed), ways=ways, shots=shots, queries=queries, size=SIZE)


def bn_tadam(strided=False, seed=0, conditioned=True, **kwargs):
    """TADAM on a float64 Conv4 with non-trivial BatchNorm affine parameters; ``conditioned``: random TEN weights."""
    tadam = TADAM(bn_conv4(strided=strided, seed=seed, out_features=None), in_shape=(1, SIZE, SIZE), **kwargs)
    if conditioned:
        torch.manual_seed(seed + 1)
        with torch.no_grad():
            for generator in tadam.ten:
                generator.weight.normal_(0, 0.3)
                generator.bias.normal_(0, 0.3)
    return tadam


@pytest.mark.parametrize("strided", [False, True])
@pytest.mark.parametrize("batch_size", [1, 3])
def test_identity_film_at_init_equals_protonet(strided, batch_size):
    tadam = bn_tadam(strided=strided, conditioned=False)
    tasks = images(batch_size)
    expected = lf.ProtoNet(tadam.model)(tasks)
    assert torch.allclose(tadam(tasks), expected, atol=1e-10, rtol=0)
    assert tadam.metric_scale.item() == 1.0
    for generator in tadam.ten:  # gamma = 1, beta = 0 for every task
        assert generator.weight.abs().sum() == 0 and generator.bias.abs().sum() == 0


def test_metric_scale_multiplies_the_distances():
    tadam = bn_tadam(conditioned=False, metric_scale=3.0)
    tasks = images()
    assert torch.allclose(tadam(tasks), 3.0 * lf.ProtoNet(tadam.model)(tasks), atol=1e-10, rtol=0)
    fixed = bn_tadam(conditioned=False, metric_scale=3.0, learn_metric_scale=False)
    assert "metric_scale" not in dict(fixed.named_parameters()) and "metric_scale" in fixed.state_dict()
    assert "metric_scale" in dict(tadam.named_parameters())


def film_by_hand(tadam, task_embedding, x):
    """The conditioned embedding of one task written block by block: conv, BN, gamma * h + beta, ReLU, pool."""
    h = x
    for i, block in enumerate(tadam.model.features):
        delta_gamma, beta = tadam.ten[i](task_embedding).chunk(2)
        conv, bn, *rest = block
        h = (1 + delta_gamma)[:, None, None] * bn(conv(h)) + beta[:, None, None]
        for layer in rest:
            h = layer(h)
    return h.flatten(1)


def test_folded_film_equals_film_applied_block_by_block():
    tadam = bn_tadam()
    assert tadam.film_layers == ("features.0.1", "features.1.1", "features.2.1", "features.3.1")
    tasks = images(3)
    logits = tadam(tasks)
    c = tadam.embed_task(tasks)
    for t in range(3):
        z = film_by_hand(tadam, c[t], torch.cat([tasks.support_x[t], tasks.query_x[t]]))
        protos = prototypes(z[None, :6], tasks.support_y[t : t + 1], 3)
        expected = -tadam.metric_scale * squared_distances(z[None, 6:], protos)[0]
        assert torch.allclose(logits[t], expected, atol=1e-10, rtol=0)
    assert not torch.allclose(logits, lf.ProtoNet(tadam.model)(tasks), atol=1e-3)  # the conditioning changes things


def test_embed_task_is_mean_of_unconditioned_prototypes():
    tadam = bn_tadam()
    tasks = images(3, ways=3, shots=2)
    c = tadam.embed_task(tasks)
    assert c.shape == (3, 4)  # (B, D): Conv4 with 4 channels, 1x1 maps at 16x16
    for t in range(3):
        z = tadam.model(tasks.support_x[t])  # the plain encoder on the support set alone
        means = torch.stack([z[tasks.support_y[t] == k].mean(0) for k in range(3)])
        assert torch.allclose(c[t], means.mean(0), atol=1e-12, rtol=0)


def test_embed_task_is_deterministic_and_per_task():
    tadam = bn_tadam()
    tasks = images(3)
    c = tadam.embed_task(tasks)
    assert torch.equal(c, tadam.embed_task(tasks))
    tadam.eval()
    assert torch.allclose(c, tadam.embed_task(tasks), atol=1e-12, rtol=0)  # no running statistics either way
    for t in range(3):
        assert torch.allclose(c[t], tadam.embed_task(lf.task_at(tasks, slice(t, t + 1)))[0], atol=1e-10, rtol=0)
    other_queries = lf.Task(tasks.support_x, tasks.support_y, torch.randn_like(tasks.query_x), tasks.query_y)
    assert torch.equal(tadam.embed_task(other_queries), c)  # the support set alone defines the task


def test_batched_equals_per_task_with_batchnorm():
    tadam = bn_tadam()
    tasks = images(3)
    batched = tadam(tasks)  # B > 1: vmap over tasks, per-task FiLM weights
    loss = tadam.meta_loss(tasks).loss
    grads = torch.autograd.grad(loss, list(tadam.parameters()))
    singles = []
    for t in range(3):
        one = lf.task_at(tasks, slice(t, t + 1))  # B == 1: plain call
        assert torch.allclose(batched[t], tadam(one)[0], atol=1e-10, rtol=0)
        singles.append(tadam.meta_loss(one).loss)
    looped = torch.stack(singles).mean()
    assert torch.allclose(loss, looped, atol=1e-12, rtol=0)
    for (name, _), g, h in zip(tadam.named_parameters(), grads, torch.autograd.grad(looped, list(tadam.parameters()))):
        assert torch.allclose(g, h, atol=1e-10, rtol=0), name


def test_no_statistics_leak_between_tasks():
    tadam = bn_tadam()
    tasks = images(3)
    assert_no_leak_between_tasks(tadam, tasks)


def test_training_moves_off_the_identity():
    tadam = bn_tadam(conditioned=False)
    opt = torch.optim.SGD(tadam.parameters(), lr=0.1)
    tadam.meta_loss(images(3)).loss.backward()
    assert all(g.weight.grad.abs().sum() > 0 and g.bias.grad.abs().sum() > 0 for g in tadam.ten)
    opt.step()
    tasks = images(2, seed=5)
    assert not torch.allclose(tadam(tasks), lf.ProtoNet(tadam.model)(tasks) * tadam.metric_scale, atol=1e-8)


def test_default_and_explicit_film_layers():
    assert default_film_layers(lf.MLP(in_features=6, hidden=(8, 8), out_features=4)) == ("net.0", "net.2")  # no BN: hidden layers
    mlp = lf.MLP(in_features=6, hidden=(8,), out_features=4).double()
    tadam = TADAM(mlp, film_layers=["net.2"])  # the output layer: a task-dependent scaling of the embedding
    assert tadam.film_layers == ("net.2",) and tadam.ten[0].out_features == 8
    tasks = blob_tasks(2, torch.Generator().manual_seed(0), ways=3, shots=2, queries=3, dim=6, dtype=torch.float64)
    assert torch.allclose(tadam(tasks), lf.ProtoNet(mlp)(tasks), atol=1e-12, rtol=0)


def test_error_messages():
    with pytest.raises(ValueError, match="no layer TADAM can condition.*film_layers"):
        TADAM(nn.Flatten(), in_shape=(6,))
    with pytest.raises(ValueError, match="no layer TADAM can condition"):
        TADAM(nn.Linear(6, 4))  # a single layer is the output: nothing hidden to condition by default
    with pytest.raises(ValueError, match="not a submodule"):
        TADAM(lf.MLP(in_features=6, hidden=(8,), out_features=4), film_layers=("net.9",))
    with pytest.raises(ValueError, match="a ReLU; FiLM needs an affine BatchNorm"):
        TADAM(lf.MLP(in_features=6, hidden=(8,), out_features=4), film_layers=("net.1",))
    with pytest.raises(ValueError, match="metric_scale must be > 0"):
        TADAM(lf.Conv4(hidden=4), metric_scale=0.0)
    with pytest.raises(ValueError, match="leading task dimension"):
        bn_tadam()(lf.task_at(images(), 0))


@pytest.mark.parametrize("name", ["tadam-omniglot-5w1s", "tadam-omniglot-20w1s"])
def test_named_config_builds(name):
    cfg = load_config(name)
    assert cfg.algorithm["name"] == "tadam" and cfg.eval.shots == 1 and cfg.eval.episodes == 1000
    cfg.model.hidden = 4  # tiny, for the test
    tadam = build_algorithm(cfg)
    assert len(tadam.film_layers) == 4
    batch = image_tasks(1, torch.Generator().manual_seed(0), ways=cfg.eval.ways, shots=1, queries=1, dtype=torch.float32)
    assert tadam(batch).shape == (1, cfg.eval.ways, cfg.eval.ways)


def test_registered():
    assert ALGORITHMS["tadam"] is TADAM and lf.TADAM is TADAM and TADAM.needs_head is False
