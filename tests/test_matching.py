"""Matching Networks: cosine nearest-neighbour oracle, attention sums to 1, FCE against the paper's
equations, batched == per-task, no BatchNorm leakage, configs, error messages."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import learnfast as lf
from learnfast.algorithms import ALGORITHMS, MatchingNet
from learnfast.algorithms.matching import FullContextEmbedding, class_log_probs
from learnfast.functional import cosine_similarity
from learnfast.train.build import build_algorithm
from learnfast.train.config import load_config
from conftest import assert_no_leak_between_tasks, blob_tasks, image_tasks


def cosine_table(a, b):
    """``(Q, D)`` x ``(S, D)`` -> ``(Q, S)``, written out by hand."""
    return (a @ b.T) / (a.norm(dim=-1, keepdim=True) * b.norm(dim=-1))


@pytest.mark.parametrize("embedding", [nn.Identity, nn.Flatten])
def test_sharp_attention_is_cosine_nearest_neighbour(embedding):
    tasks = blob_tasks(4, torch.Generator().manual_seed(0), ways=5, shots=1, queries=6, dim=6, spread=1.0, dtype=torch.float64)
    log_probs = MatchingNet(embedding(), scale=1e4)(tasks)
    assert log_probs.shape == (4, 30, 5)
    for t in range(4):
        cos = cosine_table(tasks.query_x[t], tasks.support_x[t])  # (Q, S), one support item per class
        nearest = tasks.support_y[t][cos.argmax(-1)]
        assert torch.equal(log_probs[t].argmax(-1), nearest)
        top2 = cos.topk(2, dim=-1).values
        clear = (top2[:, 0] - top2[:, 1]) > 1e-2  # a clear winner takes all the attention mass
        assert clear.any()
        onehot = F.one_hot(nearest, 5).double()
        assert torch.allclose(log_probs[t][clear].exp(), onehot[clear], atol=1e-12, rtol=0)


def test_prediction_is_attention_weighted_sum_of_one_hot_labels():
    tasks = blob_tasks(3, torch.Generator().manual_seed(1), ways=4, shots=3, queries=5, dim=6, spread=1.5, dtype=torch.float64)
    log_probs = MatchingNet(nn.Identity(), scale=1.0)(tasks)  # the paper's plain cosine softmax
    for t in range(3):
        attention = cosine_table(tasks.query_x[t], tasks.support_x[t]).softmax(-1)  # (Q, S)
        expected = attention @ F.one_hot(tasks.support_y[t], 4).double()  # (Q, N)
        assert torch.allclose(log_probs[t], expected.log(), atol=1e-12, rtol=0)


def test_attention_sums_to_one_and_so_do_class_probabilities():
    matching = MatchingNet(lf.MLP(in_features=6, hidden=(8,), out_features=5).double(), scale=3.0)
    tasks = blob_tasks(3, torch.Generator().manual_seed(2), ways=4, shots=2, queries=3, dim=6, dtype=torch.float64)
    attention = matching.attention_logits(tasks).softmax(-1)  # (B, Q, S)
    assert attention.shape == (3, 12, 8) and (attention >= 0).all()
    assert torch.allclose(attention.sum(-1), torch.ones(3, 12, dtype=torch.float64), atol=1e-12, rtol=0)
    probs = matching(tasks).exp()
    assert torch.allclose(probs.sum(-1), torch.ones(3, 12, dtype=torch.float64), atol=1e-12, rtol=0)
    onehot = F.one_hot(tasks.support_y, 4).double()
    assert torch.allclose(probs, attention @ onehot, atol=1e-12, rtol=0)


def test_helpers():
    q = torch.tensor([[[1.0, 0.0], [3.0, 3.0]]])  # (1, 2, 2)
    s = torch.tensor([[[2.0, 0.0], [0.0, 5.0], [-1.0, 0.0]]])  # (1, 3, 2)
    expected = torch.tensor([[[1.0, 0.0, -1.0], [2 ** -0.5, 2 ** -0.5, -(2 ** -0.5)]]])
    assert torch.allclose(cosine_similarity(q, s), expected, atol=1e-6)
    log_attention = torch.tensor([[[0.5, 0.2, 0.3]]]).log()
    log_p = class_log_probs(log_attention, torch.tensor([[1, 0, 1]]), 2)
    assert torch.allclose(log_p.exp(), torch.tensor([[[0.2, 0.8]]]))
    # a sharp attention does not underflow: the far class keeps a finite log-probability
    log_p = class_log_probs(torch.tensor([[[0.0, -2000.0]]]), torch.tensor([[0, 1]]), 2)
    assert torch.isfinite(log_p).all() and log_p[0, 0, 1] == -2000.0


def test_meta_loss_is_negative_log_likelihood():
    matching = MatchingNet(nn.Linear(6, 5).double())
    tasks = blob_tasks(2, torch.Generator().manual_seed(3), dim=6, dtype=torch.float64)
    out = matching.meta_loss(tasks)
    log_probs = matching(tasks)
    assert torch.allclose(out.predictions, log_probs) and not out.predictions.requires_grad
    nll = F.nll_loss(log_probs.flatten(0, 1), tasks.query_y.flatten())
    assert torch.allclose(out.loss, nll, atol=1e-14, rtol=0)


@pytest.mark.parametrize("fce", [False, True])
def test_fce_on_and_off_run_and_are_differentiable(fce):
    torch.manual_seed(0)
    matching = MatchingNet(lf.MLP(in_features=6, hidden=(8,), out_features=5), fce=fce, **({"fce_steps": 2} if fce else {}))
    assert (matching.context is not None) == fce
    tasks = blob_tasks(3, torch.Generator().manual_seed(4), ways=3, shots=2, queries=2, dim=6)
    out = matching.meta_loss(tasks)
    assert out.predictions.shape == (3, 6, 3) and torch.isfinite(out.loss)
    out.loss.backward()
    names = [k for k, _ in matching.named_parameters()]
    assert any(k.startswith("context.") for k in names) == fce
    for k, p in matching.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, k


def test_fce_follows_the_papers_equations():
    """The batched FCE against a plain per-task, per-query transcription of the appendix."""
    torch.manual_seed(0)
    d, steps = 5, 3
    fce = FullContextEmbedding(d, steps).double()
    support, query = torch.randn(2, 4, d, dtype=torch.float64), torch.randn(2, 3, d, dtype=torch.float64)
    g, f = fce(support, query)
    for t in range(2):
        out, _ = fce.support_lstm(support[t : t + 1])
        g_t = support[t] + out[0, :, :d] + out[0, :, d:]  # g'(x_i) + forward + backward hidden states
        assert torch.allclose(g[t], g_t, atol=1e-12, rtol=0)
        for i in range(3):
            f_prime = query[t, i]
            h, c = f_prime, torch.zeros(d, dtype=torch.float64)
            for _ in range(steps):
                r = torch.softmax(g_t @ h, 0) @ g_t  # readout with attention softmax(h . g(x_i))
                h, c = fce.query_lstm(torch.cat([f_prime, r])[None], (h[None], c[None]))
                h, c = h[0] + f_prime, c[0]
            assert torch.allclose(f[t, i], h, atol=1e-12, rtol=0)


def bn_matching(fce):
    torch.manual_seed(0)
    fce_options = {"fce_steps": 2, "in_shape": (1, 16, 16)} if fce else {}
    return MatchingNet(lf.Conv4(hidden=4, strided=True).double(), scale=2.0, fce=fce, **fce_options)


@pytest.mark.parametrize("fce", [False, True])
def test_batched_equals_per_task_with_batchnorm(fce):
    matching = bn_matching(fce)
    tasks = image_tasks(3, torch.Generator().manual_seed(0), ways=3, shots=2, queries=2, size=16)
    batched = matching(tasks)  # B > 1: vmap over tasks
    out = matching.meta_loss(tasks)
    out.loss.backward()
    batched_grads = {k: p.grad.clone() for k, p in matching.named_parameters()}
    matching.zero_grad()
    looped = 0
    for t in range(3):
        single = lf.task_at(tasks, slice(t, t + 1))  # B == 1: plain call
        assert torch.allclose(batched[t], matching(single)[0], atol=1e-10, rtol=0)
        looped = looped + matching.meta_loss(single).loss / 3
    looped.backward()
    for k, p in matching.named_parameters():
        assert torch.allclose(batched_grads[k], p.grad, atol=1e-10, rtol=0), k


@pytest.mark.parametrize("fce", [False, True])
def test_no_statistics_leak_between_tasks(fce):
    matching = bn_matching(fce)
    tasks = image_tasks(3, torch.Generator().manual_seed(0), ways=3, shots=2, queries=2, size=16)
    assert_no_leak_between_tasks(matching, tasks)


@pytest.mark.parametrize("name", ["matching-omniglot-5w1s", "matching-omniglot-20w1s"])
def test_named_config_builds(name):
    cfg = load_config(name)
    algorithm = build_algorithm(cfg)
    assert isinstance(algorithm, ALGORITHMS["matching"]) and isinstance(algorithm, MatchingNet)
    # no full context embeddings (the paper's Omniglot setting); cosine logits scaled by 10, because
    # unscaled cosines in [-1, 1] stalled 20-way training (62% val after 1000 episodes vs 91%)
    assert algorithm.context is None and algorithm.scale == 10.0
    ways = cfg.eval.ways
    batch = image_tasks(1, torch.Generator().manual_seed(0), ways=ways, shots=1, queries=1, dtype=torch.float32)
    with torch.no_grad():
        assert algorithm(batch).shape == (1, ways, ways)


def test_registered():
    assert ALGORITHMS["matching"] is MatchingNet and MatchingNet.needs_head is False


def test_error_messages():
    with pytest.raises(ValueError, match="scale must be > 0"):
        MatchingNet(nn.Identity(), scale=0.0)
    with pytest.raises(ValueError, match="fce_steps must be >= 1"):
        MatchingNet(nn.Identity(), fce=True, fce_steps=0)
    for ignored in ({"fce_steps": 2}, {"in_shape": (6,)}):  # settings of the FCE LSTMs, which fce=False does not build
        with pytest.raises(ValueError, match=rf"{next(iter(ignored))} is a setting of the full context embeddings.*set fce=True"):
            MatchingNet(nn.Identity(), **ignored)
    with pytest.raises(ValueError, match=r"pass in_shape="):
        MatchingNet(nn.Identity(), fce=True)  # no layer to read the embedding size from
    with pytest.raises(ValueError, match=r"fails on a dummy input of shape \(3, 28, 28\).*pass in_shape="):
        MatchingNet(lf.Conv4(hidden=4), fce=True, in_shape=(3, 28, 28))  # 1-channel network, 3-channel shape
    assert MatchingNet(nn.Identity(), fce=True, in_shape=(6,)).context is not None
