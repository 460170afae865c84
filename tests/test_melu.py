"""MeLU: only the decision layers adapt per user; the contract of every algorithm, on per-user rating tasks."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from learnfast.algorithms import MeLU
from learnfast.inner import adapt, sgd
from learnfast.models.melu import MeLUNet
from learnfast.tasks import Task

USER_FIELDS, ITEM_FIELDS, GENRES = (3, 5), (4,), 6
WIDTH = 2 + len(USER_FIELDS) + len(ITEM_FIELDS) + GENRES


def rating_tasks(batch_size: int, generator: torch.Generator, shots: int = 4, queries: int = 5, dtype=torch.float32) -> Task:
    """Users whose rating is a user offset plus the item's first genre flag times a user taste: adaptation helps."""
    n = shots + queries
    codes = [torch.randint(v, (batch_size, n, 1), generator=generator) for v in (*USER_FIELDS, *ITEM_FIELDS)]
    codes[0] = codes[0][:, :1].expand(-1, n, -1)  # one user per task
    codes[1] = codes[1][:, :1].expand(-1, n, -1)
    flags = (torch.rand(batch_size, n, GENRES, generator=generator) < 0.4).to(dtype)
    ids = torch.zeros(batch_size, n, 2)
    x = torch.cat([ids, *(c.to(dtype) for c in codes), flags], dim=-1)
    offset, taste = torch.randn(batch_size, 1, 1, generator=generator), torch.randn(batch_size, 1, 1, generator=generator)
    y = (3 + offset + taste * flags[..., :1]).to(dtype)
    return Task(x[:, :shots], y[:, :shots], x[:, shots:], y[:, shots:])


def make(seed: int = 0, **kwargs) -> MeLU:
    torch.manual_seed(seed)
    return MeLU(MeLUNet(USER_FIELDS, ITEM_FIELDS, GENRES, embedding_dim=4, hidden=(8, 8)), **{"inner_lr": 0.1, **kwargs})


def test_adapt_keys_touch_only_the_decision_layers():
    melu = make(inner_steps=3)
    model, task = melu.model, rating_tasks(1, torch.Generator().manual_seed(0))
    params = dict(model.named_parameters())
    keys = melu.adapted_keys(params)
    assert set(keys) == {k for k in params if k.startswith("decision.")} and keys
    fast = adapt(model, params, task.support_x[0], task.support_y[0], F.mse_loss, 3, sgd(0.1), adapt_keys=keys)
    for k in params:
        if k in keys:
            assert not torch.equal(fast[k], params[k]), f"{k} should adapt"
        else:
            assert fast[k] is params[k], f"{k} is an embedding: it must stay the meta-learned tensor"


def test_forward_equals_a_hand_written_local_update_in_float64():
    """MeLU's query predictions == SGD steps on the decision layers alone, written out with torch.autograd."""
    melu = make(inner_steps=2).double()
    task = rating_tasks(1, torch.Generator().manual_seed(1), dtype=torch.float64)
    model = melu.model
    params = {k: v.detach().clone().requires_grad_(k.startswith("decision.")) for k, v in model.named_parameters()}
    for _ in range(2):
        loss = F.mse_loss(functional_call(model, params, (task.support_x[0],)), task.support_y[0])
        decision = [k for k in params if k.startswith("decision.")]
        grads = torch.autograd.grad(loss, [params[k] for k in decision])
        params = {**params, **{k: params[k] - 0.1 * g for k, g in zip(decision, grads)}}
    expected = functional_call(model, params, (task.query_x[0],))
    assert torch.allclose(melu(task)[0], expected, atol=1e-12)


def test_meta_sgd_rates_cover_exactly_the_decision_layers_and_learn():
    melu = make(learned_rates=True)
    rates = melu.inner_lrs.as_dict()
    assert set(rates) == set(melu.model.decision_keys())
    melu.meta_loss(rating_tasks(3, torch.Generator().manual_seed(2))).loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in melu.inner_lrs.parameters())


def test_embeddings_learn_through_the_local_update_second_order_and_first_order():
    for memory in ("second-order", "first-order"):
        melu = make(inner_steps=1, memory=memory)
        melu.meta_loss(rating_tasks(3, torch.Generator().manual_seed(3))).loss.backward()
        embedding = melu.model.user_embeddings[0].weight
        assert embedding.grad is not None and embedding.grad.abs().sum() > 0


def test_contract_on_rating_tasks():
    """The registry contract (tests/test_contract.py), on rating tasks: finite loss, gradients everywhere, pure forward,
    seeded, and the loss goes down."""
    batch = rating_tasks(4, torch.Generator().manual_seed(4))
    melu = make(seed=0)
    out = melu.meta_loss(batch)
    assert out.loss.dim() == 0 and torch.isfinite(out.loss) and out.predictions.shape == (4, 5, 1)
    out.loss.backward()
    for k, p in melu.meta_params().items():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, k
    before = copy.deepcopy(melu.state_dict())
    melu(batch)
    assert all(torch.equal(before[k], v) for k, v in melu.state_dict().items())
    assert torch.equal(make(seed=0)(batch), make(seed=0)(batch)) and not torch.equal(make(seed=0)(batch), make(seed=1)(batch))
    held_out = rating_tasks(16, torch.Generator().manual_seed(1000))
    with torch.no_grad():
        start = melu.meta_loss(held_out).loss.item()
    optimizer = torch.optim.Adam(melu.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(5)
    for _ in range(40):
        optimizer.zero_grad()
        melu.meta_loss(rating_tasks(8, g)).loss.backward()
        optimizer.step()
    with torch.no_grad():
        assert melu.meta_loss(held_out).loss.item() < 0.5 * start


def test_bad_models_and_options_are_errors():
    with pytest.raises(TypeError, match="decision_keys"):
        MeLU(torch.nn.Linear(3, 1))
    with pytest.raises(ValueError, match="implicit solve is available through"):
        make(memory="implicit")
    with pytest.raises(ValueError, match="there are none"):
        MeLUNet((), (), 0)
