"""Relation Networks: scores in [0, 1], MSE loss by hand, class-permutation equivariance, batched ==
per-task, no BatchNorm leakage, the paper's shapes, the feature-map backbone, configs, error messages."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import learnfast as lf
from learnfast.algorithms import ALGORITHMS, RelationNet
from learnfast.algorithms.relation import RelationModule, class_features, relation_pairs
from learnfast.models import BACKBONES, Conv4Maps, build_backbone
from learnfast.train.build import build_algorithm
from learnfast.train.config import load_config
from conftest import assert_no_leak_between_tasks, blob_tasks, image_tasks

SIZE = 16  # 16x16 images -> 4x4 feature maps with Conv4Maps, the smallest the relation module takes


def map_relation(seed=0, reduction="sum"):
    """A tiny RelationNet on feature maps, in float64."""
    torch.manual_seed(seed)
    model = Conv4Maps(hidden=4)
    return RelationNet(model, in_shape=(1, SIZE, SIZE), relation_channels=4, relation_hidden=4, class_reduction=reduction).double()


def images(batch_size=3, seed=0, ways=3, shots=2, queries=2):
    return image_tasks(batch_size, torch.Generator().manual_seed(seed), ways=ways, shots=shots, queries=queries, size=SIZE)


def test_conv4_maps_keeps_feature_maps():
    model = Conv4Maps(hidden=4)
    assert model(torch.randn(3, 1, 28, 28)).shape == (3, 4, 7, 7)  # the paper's 64x7x7 at 64 channels
    assert model(torch.randn(3, 1, SIZE, SIZE)).shape == (3, 4, 4, 4)
    assert "conv4-maps" in BACKBONES
    built = build_backbone("conv4-maps", (1, 28, 28), None, hidden=4)
    assert isinstance(built, Conv4Maps) and built(torch.randn(2, 1, 28, 28)).shape == (2, 4, 7, 7)


def test_paper_shapes_at_28x28():
    relation = RelationNet(Conv4Maps())  # in_shape read off the first conv: (1, 28, 28)
    assert relation.feature_shape == (64, 7, 7)
    first_conv, first_fc = relation.relation.features[0][0], relation.relation.score[0]
    assert first_conv.in_channels == 128 and first_conv.out_channels == 64
    assert first_fc.in_features == 64 and first_fc.out_features == 8  # 7 -> 3 -> 1 after two max-pools


@pytest.mark.parametrize("backbone", ["maps", "vector"])
def test_scores_in_unit_interval_with_shape_b_q_n(backbone):
    if backbone == "maps":
        relation, tasks = map_relation(), images(ways=4, queries=3)
    else:
        torch.manual_seed(0)
        relation = RelationNet(lf.MLP(in_features=6, hidden=(8,), out_features=5)).double()
        tasks = blob_tasks(3, torch.Generator().manual_seed(0), ways=4, shots=2, queries=3, dim=6, dtype=torch.float64)
        assert isinstance(relation.relation.features, nn.Identity)  # flat features: the paper's MLP relation module
    scores = relation(tasks)
    assert scores.shape == (3, 12, 4)
    assert (scores >= 0).all() and (scores <= 1).all()


def test_meta_loss_is_mse_against_one_hot_targets():
    relation, tasks = map_relation(), images(ways=3, queries=2)
    out = relation.meta_loss(tasks)
    scores = relation(tasks)
    assert torch.allclose(out.predictions, scores) and not out.predictions.requires_grad
    by_hand = 0.0
    for t in range(3):
        for i in range(6):
            for n in range(3):
                target = 1.0 if tasks.query_y[t, i] == n else 0.0
                by_hand += (scores[t, i, n] - target) ** 2
    assert torch.allclose(out.loss, by_hand / (3 * 6 * 3), atol=1e-14, rtol=0)
    out.loss.backward()
    assert relation.relation.score[-2].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_permuting_class_order_permutes_scores(reduction):
    relation, tasks = map_relation(reduction=reduction), images(batch_size=2, ways=4, shots=2, queries=2)
    scores = relation(tasks)
    perm = torch.tensor([2, 0, 3, 1])  # class c is renamed perm[c]
    order = torch.argsort(perm[tasks.support_y[0]], stable=True)  # support stays class-major under the new names
    permuted = lf.Task(tasks.support_x[:, order], perm[tasks.support_y][:, order], tasks.query_x, perm[tasks.query_y])
    assert torch.equal(permuted.support_y[0], torch.arange(4).repeat_interleave(2))
    new_scores = relation(permuted)
    assert torch.allclose(new_scores[..., perm], scores, atol=1e-10, rtol=0)
    assert torch.equal(new_scores.argmax(-1), perm[scores.argmax(-1)])


def test_helpers():
    z = torch.arange(12.0).view(1, 3, 2, 2)  # (B=1, S=3, C=2, 2): items 0 and 2 in class 0, item 1 in class 1
    y = torch.tensor([[0, 1, 0]])
    summed = class_features(z, y, 2, "sum")
    assert torch.equal(summed, torch.stack([z[0, 0] + z[0, 2], z[0, 1]])[None])
    assert torch.equal(class_features(z, y, 2, "mean"), torch.stack([(z[0, 0] + z[0, 2]) / 2, z[0, 1]])[None])
    query = torch.randn(1, 3, 2, 2)  # (B, Q, C, ...)
    pairs = relation_pairs(query, summed)
    assert pairs.shape == (1, 6, 4, 2)
    for q in range(3):
        for n in range(2):
            assert torch.equal(pairs[0, q * 2 + n], torch.cat([summed[0, n], query[0, q]]))  # class first


def test_batched_equals_per_task_with_batchnorm():
    relation, tasks = map_relation(), images()
    batched = relation(tasks)  # B > 1: vmap over tasks
    relation.meta_loss(tasks).loss.backward()
    batched_grads = {k: p.grad.clone() for k, p in relation.named_parameters()}
    relation.zero_grad()
    looped = 0
    for t in range(3):
        single = lf.task_at(tasks, slice(t, t + 1))  # B == 1: plain call
        assert torch.allclose(batched[t], relation(single)[0], atol=1e-10, rtol=0)
        looped = looped + relation.meta_loss(single).loss / 3
    looped.backward()
    for k, p in relation.named_parameters():
        assert torch.allclose(batched_grads[k], p.grad, atol=1e-10, rtol=0), k


def test_no_statistics_leak_between_tasks():
    relation, tasks = map_relation(), images()
    assert_no_leak_between_tasks(relation, tasks)


def test_gradient_reaches_every_parameter_with_feature_maps():
    """Every parameter gets a finite gradient; all are non-zero except conv biases, which BatchNorm cancels."""
    relation = map_relation()
    relation.meta_loss(images()).loss.backward()
    for k, p in relation.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), k
        if not (k.endswith(".0.bias") and ".features." in k):
            assert p.grad.abs().sum() > 0, k


@pytest.mark.parametrize("name", ["relation-omniglot-5w1s", "relation-omniglot-20w1s"])
def test_named_config_builds(name):
    cfg = load_config(name)
    algorithm = build_algorithm(cfg)
    assert isinstance(algorithm, ALGORITHMS["relation"]) and isinstance(algorithm, RelationNet)
    assert isinstance(algorithm.model, Conv4Maps) and algorithm.feature_shape == (64, 7, 7)
    assert cfg.train.lr_halve_every == 100000 and cfg.data.dataset == "omniglot"
    ways = cfg.eval.ways
    batch = image_tasks(1, torch.Generator().manual_seed(0), ways=ways, shots=1, queries=1, dtype=torch.float32)
    with torch.no_grad():
        scores = algorithm(batch)
    assert scores.shape == (1, ways, ways) and (scores >= 0).all() and (scores <= 1).all()


def test_paper_query_counts():
    assert load_config("relation-omniglot-5w1s").train.queries == 19
    assert load_config("relation-omniglot-20w1s").train.queries == 10


def test_registered():
    assert ALGORITHMS["relation"] is RelationNet and RelationNet.needs_head is False


def test_error_messages():
    with pytest.raises(ValueError, match=r"2x2 are too small.*larger inputs.*conv4-maps"):
        RelationNet(Conv4Maps(hidden=4), in_shape=(1, 8, 8))
    with pytest.raises(ValueError, match=r"shape \(2, 4\).*feature maps \(C, H, W\) or vectors"):
        RelationNet(nn.Sequential(nn.Linear(6, 8), nn.Unflatten(1, (2, 4))))
    with pytest.raises(ValueError, match=r"pass in_shape="):
        RelationNet(nn.Identity())
    with pytest.raises(ValueError, match="unknown class_reduction 'max'"):
        RelationNet(nn.Identity(), in_shape=(6,), class_reduction="max")
    relation = map_relation()  # built for 16x16 inputs
    with pytest.raises(ValueError, match=r"built for features of shape \(4, 4, 4\).*in_shape=\(1, 28, 28\)"):
        relation(image_tasks(1, torch.Generator().manual_seed(0), ways=2, shots=1, queries=1, size=28))
    with pytest.raises(ValueError, match="conv4-maps returns feature maps.*conv4 or conv4-strided"):
        build_backbone("conv4-maps", (1, 28, 28), 5)
    with pytest.raises(ValueError, match="leading task dimension"):
        relation(lf.task_at(images(), 0))


def test_relation_module_rejects_other_ranks():
    with pytest.raises(ValueError, match="feature maps"):
        RelationModule((2, 3, 4, 5))
