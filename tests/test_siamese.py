"""Siamese networks: weighted L1 by hand, pair labels and class balance, the loss by hand, class scores
(max / mean), batched == per-task, no BatchNorm leakage, configs, error messages."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import learnfast as lf
from learnfast.algorithms import ALGORITHMS, SiameseNet
from learnfast.algorithms.siamese import pair_weights, weighted_l1_logits
from learnfast.train.build import build_algorithm
from learnfast.train.config import load_config
from conftest import assert_no_leak_between_tasks, blob_tasks, image_tasks

DIM = 6


def identity_siamese(seed=0, **kwargs):
    """A Siamese net on the raw inputs (identity encoder) with a random float64 distance layer."""
    torch.manual_seed(seed)
    siamese = SiameseNet(nn.Flatten(), in_shape=(DIM,), **kwargs).double()
    with torch.no_grad():
        siamese.distance.weight.normal_()
        siamese.distance.bias.normal_()
    return siamese


def blobs(batch_size=3, seed=0, ways=4, shots=2, queries=3):
    return blob_tasks(batch_size, torch.Generator().manual_seed(seed), ways=ways, shots=shots, queries=queries,
                      dim=DIM, spread=1.0, dtype=torch.float64)


def by_hand(siamese, a, b):
    """``(P, D)`` x ``(R, D)`` -> ``(P, R)``: sum_d w_d |a_d - b_d| + bias, one pair at a time."""
    w, bias = siamese.distance.weight[0].detach(), siamese.distance.bias[0].detach()
    return torch.stack([torch.stack([(w * (x - y).abs()).sum() + bias for y in b]) for x in a])


def test_weighted_l1_logits_by_hand():
    siamese, tasks = identity_siamese(), blobs()
    logits = weighted_l1_logits(tasks.query_x, tasks.support_x, siamese.distance)
    assert logits.shape == (3, 12, 8)
    for t in range(3):
        assert torch.allclose(logits[t], by_hand(siamese, tasks.query_x[t], tasks.support_x[t]), atol=1e-12, rtol=0)


@pytest.mark.parametrize("class_score", ["max", "mean"])
def test_class_scores_reduce_each_class_support_items(class_score):
    siamese, tasks = identity_siamese(class_score=class_score), blobs(shots=3)
    scores = siamese(tasks)
    assert scores.shape == (3, 12, 4)
    for t in range(3):
        pair = by_hand(siamese, tasks.query_x[t], tasks.support_x[t])  # (Q, S)
        for c in range(4):
            in_class = pair[:, tasks.support_y[t] == c]  # (Q, K)
            expected = in_class.max(-1).values if class_score == "max" else in_class.mean(-1)
            assert torch.allclose(scores[t, :, c], expected, atol=1e-12, rtol=0)


def test_one_shot_prediction_is_most_similar_support_item():
    siamese, tasks = identity_siamese(), blobs(ways=5, shots=1)
    scores = siamese(tasks)
    for t in range(3):
        pair = by_hand(siamese, tasks.query_x[t], tasks.support_x[t])
        assert torch.equal(scores[t].argmax(-1), tasks.support_y[t][pair.argmax(-1)])
    assert torch.equal(identity_siamese(class_score="mean")(tasks), scores)  # one item per class: max == mean


def test_pair_weights_balance_and_labels():
    support_y = torch.tensor([[0, 0, 1, 1, 2, 2]])  # 3-way 2-shot
    query_y = torch.tensor([[0, 1, 2, 2]])
    same = query_y.unsqueeze(2) == support_y.unsqueeze(1)  # (1, 4, 6)
    assert same.sum() == 4 * 2 and (~same).sum() == 4 * 4  # Q*K same pairs, Q*(N-1)*K different ones
    w = pair_weights(same, torch.ones_like(same), balance=True, dtype=torch.float64)
    assert torch.allclose(w[same].sum(), torch.tensor(0.5, dtype=torch.float64))
    assert torch.allclose(w[~same].sum(), torch.tensor(0.5, dtype=torch.float64))
    assert torch.allclose(w[same], torch.full((8,), 1 / 16, dtype=torch.float64))
    assert torch.allclose(w[~same], torch.full((16,), 1 / 32, dtype=torch.float64))
    plain = pair_weights(same, torch.ones_like(same), balance=False, dtype=torch.float64)
    assert torch.allclose(plain, torch.full((1, 4, 6), 1 / 24, dtype=torch.float64))
    # invalid pairs weigh nothing; a group without pairs gets no weight (no NaN)
    valid = torch.zeros_like(same)
    valid[0, 0] = True
    masked = pair_weights(same, valid, balance=True, dtype=torch.float64)
    assert masked[~valid].abs().sum() == 0 and torch.isclose(masked.sum(), torch.tensor(1.0, dtype=torch.float64))
    one_way = pair_weights(torch.ones(1, 2, 2, dtype=torch.bool), torch.ones(1, 2, 2, dtype=torch.bool), True, torch.float64)
    assert torch.isfinite(one_way).all() and torch.isclose(one_way.sum(), torch.tensor(0.5, dtype=torch.float64))


@pytest.mark.parametrize("balance", [True, False])
def test_query_support_loss_by_hand(balance):
    siamese, tasks = identity_siamese(balance=balance), blobs()
    out = siamese.meta_loss(tasks)
    losses = []
    for t in range(3):
        logits = by_hand(siamese, tasks.query_x[t], tasks.support_x[t]).flatten()
        same = (tasks.query_y[t][:, None] == tasks.support_y[t][None, :]).flatten()
        bce = F.binary_cross_entropy_with_logits(logits, same.double(), reduction="none")
        losses.append(0.5 * bce[same].mean() + 0.5 * bce[~same].mean() if balance else bce.mean())
    assert torch.allclose(out.loss, torch.stack(losses).mean(), atol=1e-12, rtol=0)
    assert torch.allclose(out.predictions, siamese(tasks)) and not out.predictions.requires_grad


def test_all_pairs_loss_by_hand():
    siamese, tasks = identity_siamese(pairs="all"), blobs(batch_size=2)
    out = siamese.meta_loss(tasks)
    losses = []
    for t in range(2):
        x = torch.cat([tasks.support_x[t], tasks.query_x[t]])
        y = torch.cat([tasks.support_y[t], tasks.query_y[t]])
        i, j = torch.triu_indices(len(y), len(y), offset=1)  # every unordered pair of distinct items once
        logits = by_hand(siamese, x, x)[i, j]
        same = y[i] == y[j]
        assert same.sum() == 4 * 5 * 4 // 2  # 4 classes of 5 items: 10 same pairs each
        bce = F.binary_cross_entropy_with_logits(logits, same.double(), reduction="none")
        losses.append(0.5 * bce[same].mean() + 0.5 * bce[~same].mean())
    assert torch.allclose(out.loss, torch.stack(losses).mean(), atol=1e-12, rtol=0)
    assert torch.allclose(out.predictions, siamese(tasks))  # predictions are query-vs-support class scores either way


def bn_siamese(seed=0):
    torch.manual_seed(seed)
    return SiameseNet(lf.Conv4(hidden=4, strided=True), in_shape=(1, 16, 16)).double()


@pytest.mark.parametrize("pairs", ["query-support", "all"])
def test_batched_equals_per_task_with_batchnorm(pairs):
    siamese = bn_siamese()
    siamese.pairs = pairs
    tasks = image_tasks(3, torch.Generator().manual_seed(0), ways=3, shots=2, queries=2, size=16)
    batched = siamese(tasks)  # B > 1: vmap over tasks
    loss = siamese.meta_loss(tasks).loss
    grads = torch.autograd.grad(loss, list(siamese.parameters()))
    singles = []
    for t in range(3):
        one = lf.task_at(tasks, slice(t, t + 1))  # B == 1: plain call
        assert torch.allclose(batched[t], siamese(one)[0], atol=1e-10, rtol=0)
        singles.append(siamese.meta_loss(one).loss)
    looped = torch.stack(singles).mean()
    assert torch.allclose(loss, looped, atol=1e-12, rtol=0)
    for g, h in zip(grads, torch.autograd.grad(looped, list(siamese.parameters()))):
        assert torch.allclose(g, h, atol=1e-10, rtol=0)


def test_no_statistics_leak_between_tasks():
    siamese = bn_siamese()
    tasks = image_tasks(3, torch.Generator().manual_seed(0), ways=3, shots=2, queries=2, size=16)
    assert_no_leak_between_tasks(siamese, tasks)


def test_learns_to_verify_blobs():
    """Same/different verification on blobs: a few Adam steps make the class scores classify."""
    torch.manual_seed(0)
    siamese = SiameseNet(lf.MLP(in_features=DIM, hidden=(8,), out_features=8))
    opt = torch.optim.Adam(siamese.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    for _ in range(60):
        opt.zero_grad()
        siamese.meta_loss(blob_tasks(8, g, ways=3, shots=1, queries=4, dim=DIM)).loss.backward()
        opt.step()
    held_out = blob_tasks(32, torch.Generator().manual_seed(99), ways=3, shots=1, queries=4, dim=DIM)
    accuracy = (siamese(held_out).argmax(-1) == held_out.query_y).float().mean()
    assert accuracy > 0.8


@pytest.mark.parametrize("name", ["siamese-omniglot-5w1s", "siamese-omniglot-20w1s"])
def test_named_config_builds(name):
    cfg = load_config(name)
    assert cfg.algorithm["name"] == "siamese" and cfg.eval.shots == 1 and cfg.eval.episodes == 1000
    cfg.model.hidden = 4  # tiny, for the test
    siamese = build_algorithm(cfg)
    batch = image_tasks(1, torch.Generator().manual_seed(0), ways=cfg.eval.ways, shots=1, queries=1, dtype=torch.float32)
    assert siamese(batch).shape == (1, cfg.eval.ways, cfg.eval.ways)


def test_registered():
    assert ALGORITHMS["siamese"] is SiameseNet and lf.SiameseNet is SiameseNet and SiameseNet.needs_head is False


def test_error_messages():
    with pytest.raises(ValueError, match="unknown class_score 'min'"):
        SiameseNet(nn.Flatten(), in_shape=(DIM,), class_score="min")
    with pytest.raises(ValueError, match="unknown pairs 'support-support'"):
        SiameseNet(nn.Flatten(), in_shape=(DIM,), pairs="support-support")
    with pytest.raises(ValueError, match="pass in_shape"):
        SiameseNet(nn.Flatten())
    with pytest.raises(ValueError, match="leading task dimension"):
        identity_siamese()(lf.task_at(blobs(), 0))
