"""Prototypical Networks: nearest-class-mean oracle, batched == per-task, no BatchNorm leakage."""
import copy

import pytest
import torch
from torch import nn

import learnfast as lf
from learnfast.functional import prototypes, squared_distances
from conftest import assert_no_leak_between_tasks, blob_tasks, image_tasks


@pytest.mark.parametrize("embedding", [nn.Identity, nn.Flatten])
def test_identity_embedding_is_nearest_class_mean(embedding):
    g = torch.Generator().manual_seed(0)
    tasks = blob_tasks(4, g, ways=4, shots=3, queries=5, dim=6, spread=1.5, dtype=torch.float64)
    logits = lf.ProtoNet(embedding())(tasks)
    assert logits.shape == (4, 20, 4)
    for t in range(4):
        means = torch.stack([tasks.support_x[t][tasks.support_y[t] == c].mean(0) for c in range(4)])
        dist2 = torch.cdist(tasks.query_x[t], means).pow(2)
        assert torch.allclose(logits[t], -dist2, atol=1e-10, rtol=0)
        assert torch.equal(logits[t].argmax(-1), dist2.argmin(-1))


def test_prototypes_and_distances_helpers():
    z = torch.tensor([[[0.0, 0.0], [2.0, 0.0], [0.0, 4.0]]])  # (1, 3, 2)
    y = torch.tensor([[0, 0, 1]])
    protos = prototypes(z, y, 2)
    assert torch.equal(protos, torch.tensor([[[1.0, 0.0], [0.0, 4.0]]]))
    q = torch.tensor([[[1.0, 1.0]]])
    assert torch.allclose(squared_distances(q, protos), torch.tensor([[[1.0, 10.0]]]))


def bn_encoder(seed=0):
    torch.manual_seed(seed)
    return lf.Conv4(hidden=4, strided=True).double()


def test_batched_equals_per_task_with_batchnorm():
    model = bn_encoder()
    proto = lf.ProtoNet(model)
    tasks = image_tasks(3, torch.Generator().manual_seed(0), ways=3, shots=2, queries=2, size=16)
    batched = proto(tasks)  # B > 1: vmap over tasks
    for t in range(3):
        single = proto(lf.task_at(tasks, slice(t, t + 1)))  # B == 1: plain call
        assert torch.allclose(batched[t], single[0], atol=1e-10, rtol=0)
    # the per-task statistics matter: one encoder call on all tasks at once would differ
    pooled = model(torch.cat([tasks.support_x, tasks.query_x], dim=1).flatten(0, 1)).view(3, 12, -1)
    leaky = -squared_distances(pooled[:, 6:], prototypes(pooled[:, :6], tasks.support_y, 3))
    assert not torch.allclose(leaky, batched, atol=1e-6)


def test_no_statistics_leak_between_tasks():
    proto = lf.ProtoNet(bn_encoder())
    tasks = image_tasks(3, torch.Generator().manual_seed(0), ways=3, shots=2, queries=2, size=16)
    assert_no_leak_between_tasks(proto, tasks)


def test_meta_loss_is_cross_entropy_of_logits():
    proto = lf.ProtoNet(nn.Linear(6, 5).double())
    tasks = blob_tasks(2, torch.Generator().manual_seed(1), dim=6, dtype=torch.float64)
    out = proto.meta_loss(tasks)
    logits = proto(tasks)
    assert torch.allclose(out.predictions, logits) and not out.predictions.requires_grad
    expected = nn.functional.cross_entropy(logits.flatten(0, 1), tasks.query_y.flatten())
    assert torch.allclose(out.loss, expected, atol=1e-14, rtol=0)
    out.loss.backward()
    assert proto.model.weight.grad.abs().sum() > 0


def test_no_head_needed():
    assert lf.ProtoNet.needs_head is False and lf.MAML.needs_head is True
