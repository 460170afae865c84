"""MANN: LRUA memory shapes and a hand-computed least-used write, labels shown one step late,
batched == per-task, instance numbers, the per-instance table, the time order, configs, errors."""
import math
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import learnfast as lf
from learnfast.algorithms import ALGORITHMS, MANN
from learnfast.algorithms.mann import (
    MEMORY_INIT, PAPER_INSTANCES, hashed_order, instance_accuracy, instance_numbers, least_used, lrua_read, lrua_write,
    usage_update,
)
from learnfast.train.build import build_algorithm
from learnfast.train.config import load_config
from conftest import assert_no_leak_between_tasks, blob_tasks, image_tasks

DIM = 6


def tiny_mann(seed=0, ways=3, order="hash", dtype=torch.float64, **sizes):
    torch.manual_seed(seed)
    sizes = {"controller_size": 8, "memory_slots": 6, "memory_width": 4, "read_heads": 2, **sizes}
    return MANN(lf.MLP(in_features=DIM, hidden=(8,), out_features=5).to(dtype), ways=ways, order=order, **sizes)


def blobs(batch_size=3, seed=0, ways=3, shots=3, queries=2, dtype=torch.float64):
    return blob_tasks(batch_size, torch.Generator().manual_seed(seed), ways=ways, shots=shots, queries=queries, dim=DIM, dtype=dtype)


# -- memory ---------------------------------------------------------------------------------------
def test_memory_read_write_shapes():
    g = torch.Generator().manual_seed(0)
    b, heads, slots, width = 2, 3, 7, 5
    memory = torch.randn(b, slots, width, generator=g)
    keys = torch.randn(b, heads, width, generator=g).tanh()
    gates = torch.rand(b, heads, 1, generator=g)
    read_weights = torch.rand(b, heads, slots, generator=g).softmax(-1)
    usage = torch.rand(b, slots, generator=g)
    new_memory, write_weights = lrua_write(memory, keys, gates, read_weights, usage)
    assert new_memory.shape == (b, slots, width) and write_weights.shape == (b, heads, slots)
    # each head's write weights sum to sigma * 1 + (1 - sigma) * 1
    assert torch.allclose(write_weights.sum(-1), torch.ones(b, heads))
    weights, reads = lrua_read(new_memory, keys)
    assert weights.shape == (b, heads, slots) and reads.shape == (b, heads, width)
    assert torch.allclose(weights.sum(-1), torch.ones(b, heads)) and (weights > 0).all()
    assert usage_update(usage, weights, write_weights, 0.9).shape == (b, slots)


def test_model_step_shapes():
    mann = tiny_mann(memory_slots=7, memory_width=5, read_heads=3, controller_size=9)
    state = mann.initial_state(4, torch.zeros(1, dtype=torch.float64))
    assert state.memory.shape == (4, 7, 5) and torch.all(state.memory == MEMORY_INIT)
    assert state.read_weights.shape == (4, 3, 7) and state.usage.shape == (4, 7) and state.reads.shape == (4, 15)
    state, logits = mann.step(state, torch.randn(4, 5, dtype=torch.float64), torch.zeros(4, 3, dtype=torch.float64))
    assert logits.shape == (4, 3)
    assert state.memory.shape == (4, 7, 5) and state.read_weights.shape == (4, 3, 7) and state.hidden.shape == (4, 9)


def test_least_recently_used_write_by_hand():
    """One head, four slots: the least-used slot is cleared and written; usage decays by gamma."""
    memory = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]]], dtype=torch.float64)
    usage = torch.tensor([[0.5, 0.1, 0.9, 0.3]], dtype=torch.float64)  # slot 1 is the least used
    prev_read = torch.tensor([[[0.1, 0.2, 0.3, 0.4]]], dtype=torch.float64)
    key = torch.tensor([[[0.5, -1.0]]], dtype=torch.float64)
    gate = torch.tensor([[[0.25]]], dtype=torch.float64)
    assert least_used(usage, 1).tolist() == [[1]]
    new_memory, write_weights = lrua_write(memory, key, gate, prev_read, usage)
    expected_w = [0.25 * 0.1, 0.25 * 0.2 + 0.75, 0.25 * 0.3, 0.25 * 0.4]
    assert torch.allclose(write_weights[0, 0], torch.tensor(expected_w, dtype=torch.float64))
    expected_m = memory[0].clone()
    expected_m[1] = 0.0  # cleared before the write
    for i in range(4):
        expected_m[i] = expected_m[i] + expected_w[i] * key[0, 0]
    assert torch.allclose(new_memory[0], expected_m)
    reads = torch.tensor([[[0.4, 0.3, 0.2, 0.1]]], dtype=torch.float64)
    new_usage = usage_update(usage, reads, write_weights, gamma=0.95)
    assert torch.allclose(new_usage[0], 0.95 * usage[0] + reads[0, 0] + write_weights[0, 0])
    # no reads and no writes: usage only decays
    zero = torch.zeros(1, 1, 4, dtype=torch.float64)
    assert torch.allclose(usage_update(usage, zero, zero, gamma=0.95), 0.95 * usage)


def test_each_head_writes_its_own_least_used_slot_and_only_the_least_used_is_cleared():
    memory = torch.ones(1, 5, 2, dtype=torch.float64)
    usage = torch.tensor([[0.7, 0.2, 0.9, 0.1, 0.5]], dtype=torch.float64)  # order: 3, 1, 4, 0, 2
    keys = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]], dtype=torch.float64)
    gates = torch.zeros(1, 2, 1, dtype=torch.float64)  # write only to least-used slots
    new_memory, write_weights = lrua_write(memory, keys, gates, torch.zeros(1, 2, 5, dtype=torch.float64), usage)
    assert write_weights[0].tolist() == [[0, 0, 0, 1, 0], [0, 1, 0, 0, 0]]
    assert new_memory[0].tolist() == [[1, 1], [1, 2], [1, 1], [1, 0], [1, 1]]  # slot 3 cleared then written by head 0


@pytest.mark.parametrize("key_strength, read_address, add_vector", [
    (False, "after-write", False), (True, "after-write", False), (True, "before-write", False), (True, "before-write", True)])
def test_module_step_follows_the_lrua_equations(key_strength, read_address, add_vector):
    """A full step with a fixed key, gate (read strength, add vector), against a plain per-slot transcription of the equations."""
    mann = tiny_mann(read_heads=1, memory_slots=4, memory_width=2, controller_size=3, key_strength=key_strength,
                     read_address=read_address, add_vector=add_vector)
    key_logits, gate_logit, strength_logit = torch.tensor([0.3, -0.8], dtype=torch.float64), 0.4, 1.7
    add_logits = torch.tensor([-1.1, 0.6], dtype=torch.float64)
    with torch.no_grad():
        mann.addressing.weight.zero_()
        mann.addressing.bias.copy_(torch.tensor([*key_logits.tolist(), *(add_logits.tolist() if add_vector else []), gate_logit]
                                                + ([strength_logit] if key_strength else [])))
    key, sigma = key_logits.tanh(), torch.sigmoid(torch.tensor(gate_logit, dtype=torch.float64))
    written = add_logits.tanh() if add_vector else key
    beta = 1 + math.log1p(math.exp(strength_logit)) if key_strength else 1.0  # 1 + softplus
    state = mann.initial_state(1, torch.zeros(1, dtype=torch.float64))
    memory = [[MEMORY_INIT] * 2 for _ in range(4)]
    usage, read_w = [0.0] * 4, [0.0] * 4
    for t in range(6):
        z = torch.randn(1, 5, dtype=torch.float64)
        state, _ = mann.step(state, z, torch.zeros(1, 3, dtype=torch.float64))
        lu = min(range(4), key=lambda i: (usage[i], i))  # least used, ties by index
        write_w = [sigma.item() * read_w[i] + (1 - sigma.item()) * (i == lu) for i in range(4)]
        previous = memory
        memory = [row[:] for row in memory]
        memory[lu] = [0.0, 0.0]
        memory = [[memory[i][j] + write_w[i] * written[j].item() for j in range(2)] for i in range(4)]
        addressed = previous if read_address == "before-write" else memory
        cos = [sum(addressed[i][j] * key[j].item() for j in range(2)) / (torch.tensor(addressed[i]).norm() * key.norm()).item() for i in range(4)]
        read_w = (beta * torch.tensor(cos, dtype=torch.float64)).softmax(0).tolist()
        reads = [sum(read_w[i] * memory[i][j] for i in range(4)) for j in range(2)]
        usage = [0.95 * usage[i] + read_w[i] + write_w[i] for i in range(4)]
        assert torch.allclose(state.memory[0], torch.tensor(memory, dtype=torch.float64), atol=1e-12), t
        assert torch.allclose(state.read_weights[0, 0], torch.tensor(read_w, dtype=torch.float64), atol=1e-12), t
        assert torch.allclose(state.usage[0], torch.tensor(usage, dtype=torch.float64), atol=1e-12), t
        assert torch.allclose(state.reads[0], torch.tensor(reads, dtype=torch.float64), atol=1e-12), t


# -- the sequence protocol ------------------------------------------------------------------------
@pytest.mark.parametrize("order", ["given", "hash"])
def test_label_of_step_t_is_shown_at_step_t_plus_one(order):
    mann = tiny_mann(order=order)
    batch = blobs()
    before = mann.sequence(batch)
    s = batch.support_y.shape[1]
    for position in (0, 4, s - 1):  # a support item, wherever it lands in time
        changed_y = batch.support_y.clone()
        changed_y[0, position] = (changed_y[0, position] + 1) % 3  # task 0 only
        changed = lf.Task(batch.support_x, changed_y, batch.query_x, batch.query_y)
        after = mann.sequence(changed)
        assert torch.equal(after.order, before.order)  # the order does not depend on labels
        step = int((before.order[0] == position).nonzero())  # when item `position` of task 0 is shown
        assert torch.equal(after.labels[0, step], changed_y[0, position])
        assert torch.equal(after.logits[0, : step + 1], before.logits[0, : step + 1])  # up to and including step t
        if step + 1 < s:
            assert not torch.allclose(after.logits[0, step + 1], before.logits[0, step + 1])
        assert torch.equal(after.logits[1:], before.logits[1:])
    # the queries come after the whole sequence: they see every support label
    changed_y = batch.support_y.clone()
    last = int(before.order[0, -1])
    changed_y[0, last] = (changed_y[0, last] + 1) % 3
    after = mann(lf.Task(batch.support_x, changed_y, batch.query_x, batch.query_y))
    assert not torch.allclose(after[0], mann(batch)[0])


def test_first_step_sees_a_zero_label_and_queries_do_not_read_query_labels():
    mann = tiny_mann(order="given")
    batch = blobs()
    out = mann.sequence(batch)
    state = mann.initial_state(3, torch.zeros(1, dtype=torch.float64))
    z = mann.model(batch.support_x[:, 0])
    _, first = mann.step(state, z, torch.zeros(3, 3, dtype=torch.float64))
    assert torch.allclose(out.logits[:, 0], first, atol=1e-12)
    shuffled = lf.Task(batch.support_x, batch.support_y, batch.query_x, batch.query_y.flip(1))
    assert torch.equal(mann(shuffled), mann(batch))


def test_queries_are_independent_next_steps():
    mann = tiny_mann()
    batch = blobs(queries=3)
    logits = mann(batch)
    assert logits.shape == (3, 9, 3)
    perm = torch.randperm(9, generator=torch.Generator().manual_seed(0))
    permuted = lf.Task(batch.support_x, batch.support_y, batch.query_x[:, perm], batch.query_y[:, perm])
    assert torch.allclose(mann(permuted), logits[:, perm], atol=1e-12)
    single = lf.Task(batch.support_x, batch.support_y, batch.query_x[:, 4:5], batch.query_y[:, 4:5])
    assert torch.allclose(mann(single)[:, 0], logits[:, 4], atol=1e-12)


def test_meta_loss_covers_every_step():
    mann = tiny_mann()
    batch = blobs()
    out = mann.meta_loss(batch)
    seq, query = mann.sequence(batch), mann(batch)
    logits = torch.cat([seq.logits, query], 1).flatten(0, 1)
    targets = torch.cat([seq.labels, batch.query_y], 1).flatten()
    assert torch.allclose(out.loss, F.cross_entropy(logits, targets), atol=1e-14, rtol=0)
    assert torch.equal(out.predictions, query) and not out.predictions.requires_grad


def test_fewer_classes_than_ways_use_the_first_outputs():
    mann = tiny_mann(ways=5)
    batch = blobs(ways=3)
    assert mann(batch).shape == (3, 6, 3) and mann.sequence(batch).logits.shape == (3, 9, 3)


# -- batching -------------------------------------------------------------------------------------
def bn_mann():
    torch.manual_seed(0)
    encoder = lf.Conv4(hidden=4, strided=True).double()
    return MANN(encoder, ways=3, controller_size=8, memory_slots=6, memory_width=4, read_heads=2, in_shape=(1, 16, 16))


def test_batched_equals_per_task_with_batchnorm():
    mann = bn_mann()
    batch = image_tasks(3, torch.Generator().manual_seed(0), ways=3, shots=2, queries=2, size=16)
    batched_seq, batched = mann.sequence(batch), mann(batch)
    mann.meta_loss(batch).loss.backward()
    batched_grads = {k: p.grad.clone() for k, p in mann.named_parameters()}
    mann.zero_grad()
    looped = 0
    for t in range(3):
        single = lf.task_at(batch, slice(t, t + 1))
        seq = mann.sequence(single)
        assert torch.equal(seq.order[0], batched_seq.order[t])
        assert torch.allclose(seq.logits[0], batched_seq.logits[t], atol=1e-10, rtol=0)
        assert torch.allclose(mann(single)[0], batched[t], atol=1e-10, rtol=0)
        looped = looped + mann.meta_loss(single).loss / 3
    looped.backward()
    for k, p in mann.named_parameters():
        assert torch.allclose(batched_grads[k], p.grad, atol=1e-10, rtol=0), k


def test_no_statistics_leak_between_tasks():
    mann = bn_mann()
    batch = image_tasks(3, torch.Generator().manual_seed(0), ways=3, shots=2, queries=2, size=16)
    assert_no_leak_between_tasks(mann, batch)


# -- time order and instance numbers ---------------------------------------------------------------
def test_instance_numbers_on_a_hand_made_sequence():
    labels = torch.tensor([[2, 0, 2, 2, 0, 1], [1, 1, 1, 0, 0, 1]])
    assert instance_numbers(labels).tolist() == [[1, 1, 2, 3, 2, 1], [1, 2, 3, 1, 2, 4]]


def test_hashed_order_is_a_per_task_permutation_seeded_by_the_task():
    batch = blobs(batch_size=6, shots=4)
    order = hashed_order(batch.support_x)
    assert order.dtype == torch.int64 and torch.equal(order.sort(1).values, torch.arange(12).expand(6, 12))
    assert len({tuple(o) for o in order.tolist()}) == 6  # unrelated orders for different tasks
    for t in range(6):  # the same order alone as in any batch
        assert torch.equal(hashed_order(batch.support_x[t : t + 1])[0], order[t])
    assert torch.equal(hashed_order(batch.support_x.clone()), order)  # a function of the values only
    changed = batch.support_x.clone()
    changed[0, 5, 0] += 0.5  # another task: another order
    assert not torch.equal(hashed_order(changed)[0], order[0]) and torch.equal(hashed_order(changed)[1:], order[1:])


def test_hashed_order_shuffles_the_labels_of_a_class_major_support_set():
    """Over many tasks, every class shows up at every step: the label sequence is not predictable from time."""
    batch = blobs(batch_size=200, shots=2)
    labels = batch.support_y.gather(1, hashed_order(batch.support_x))  # (200, 6)
    frequency = F.one_hot(labels, 3).double().mean(0)  # (6 steps, 3 classes), about 1/3 each
    assert (frequency - 1 / 3).abs().max() < 0.12


# -- the per-instance table -----------------------------------------------------------------------
class BlobSource:
    """A task source like EpisodeSampler: ``sample(batch_size, generator) -> Task``."""

    def __init__(self, ways, shots, queries):
        self.ways, self.shots, self.queries = ways, shots, queries

    def sample(self, batch_size, generator):
        return blob_tasks(batch_size, generator, ways=self.ways, shots=self.shots, queries=self.queries, dim=DIM, dtype=torch.float64)


def test_instance_accuracy_pools_steps_by_instance():
    mann = tiny_mann()
    source = BlobSource(ways=3, shots=4, queries=1)
    table = instance_accuracy(mann, source, episodes=7, seed=3, instances=(1, 2, 4), batch_size=3)
    assert set(table) == {1, 2, 4} and all(0.0 <= v <= 1.0 for v in table.values())
    # the oracle: the same fixed episodes, counted step by step
    from learnfast.train.evaluate import episode_generator

    hits, counts = {1: 0, 2: 0, 4: 0}, {1: 0, 2: 0, 4: 0}
    with torch.no_grad():
        for i in range(7):
            out = mann.sequence(source.sample(1, episode_generator(3, i)))
            for t in range(12):
                k = int(out.instances[0, t])
                if k in hits:
                    hits[k] += int(out.logits[0, t].argmax() == out.labels[0, t])
                    counts[k] += 1
    assert counts == {1: 21, 2: 21, 4: 21}
    for k in hits:
        assert table[k] == pytest.approx(hits[k] / counts[k], abs=1e-12)
    assert instance_accuracy(mann, source, episodes=7, seed=3, instances=(1, 2, 4), batch_size=5) == table
    assert mann.training  # restored


def test_instance_accuracy_errors():
    mann = tiny_mann()
    with pytest.raises(ValueError, match=r"instance \[5, 10\].*shots >= 10"):
        instance_accuracy(mann, BlobSource(3, 4, 1), episodes=2, seed=0)
    with pytest.raises(ValueError, match="episodes must be >= 1"):
        instance_accuracy(mann, BlobSource(3, 4, 1), episodes=0, seed=0)
    assert PAPER_INSTANCES == (1, 2, 3, 4, 5, 10)


def blob_sampler(shots):
    """An EpisodeSampler (it has ``.spec``) over 5 Gaussian classes of 8 items each."""
    g = torch.Generator().manual_seed(0)
    centres = 2.0 * torch.randn(5, 1, DIM, generator=g, dtype=torch.float64)
    inputs = (centres + 0.3 * torch.randn(5, 8, DIM, generator=g, dtype=torch.float64)).flatten(0, 1)
    return lf.EpisodeSampler(inputs, torch.arange(5).repeat_interleave(8), lf.EpisodeSpec(ways=3, shots=shots, queries=1))


@pytest.mark.parametrize("shots,instances", [(4, (1, 2, 3, 4)), (7, (1, 2, 3, 4, 5))])
def test_extra_report_is_the_per_instance_table_of_the_instances_that_fit(shots, instances):
    mann, source = tiny_mann(), blob_sampler(shots)
    report = mann.extra_report(source, episodes=5, seed=2)
    table = instance_accuracy(mann, source, episodes=5, seed=2, instances=instances)
    assert report == {"instance_accuracy": {str(k): v for k, v in table.items()}}
    assert list(report["instance_accuracy"]) == [str(k) for k in instances]


def test_extra_report_needs_a_source_with_a_spec():
    with pytest.raises(TypeError, match=r"\.spec\.shots"):
        tiny_mann().extra_report(BlobSource(3, 4, 1), episodes=2, seed=0)


def test_other_algorithms_report_nothing_extra():
    assert lf.ProtoNet(lf.MLP(in_features=DIM, hidden=(8,), out_features=4)).extra_report(blob_sampler(2), episodes=3, seed=0) == {}


def test_learns_to_bind_items_to_labels_shown_one_step_later():
    """The loss goes down, after a plateau: the binding of an item to the label shown one step later must be
    discovered first (about 100-200 Adam steps here, 2-way 1-shot; the contract's 30 steps are too few)."""
    torch.manual_seed(0)
    mann = MANN(lf.MLP(in_features=8, hidden=(16,), out_features=8), ways=2, controller_size=16, memory_slots=8, memory_width=8, read_heads=1)
    held_out = blob_tasks(16, torch.Generator().manual_seed(1000), ways=2, shots=1, queries=4, dim=8)
    with torch.no_grad():
        before = mann.meta_loss(held_out).loss.item()
    opt = torch.optim.Adam(mann.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    for _ in range(300):
        opt.zero_grad()
        mann.meta_loss(blob_tasks(8, g, ways=2, shots=1, queries=4, dim=8)).loss.backward()
        opt.step()
    with torch.no_grad():
        after = mann.meta_loss(held_out).loss.item()
    assert after < 0.8 * before, (before, after)


# -- configs and errors ---------------------------------------------------------------------------
def test_registered_and_config_builds():
    assert ALGORITHMS["mann"] is MANN and MANN.needs_head is False
    cfg = load_config("mann-omniglot-5way")
    assert (cfg.train.ways, cfg.train.shots) == (5, 10)  # the paper's 50-item sequences
    mann = build_algorithm(cfg)
    assert isinstance(mann, MANN) and mann.ways == 5 and mann.heads == 4 and mann.slots == 128 and mann.width == 40
    assert mann.controller.hidden_size == 200 and mann.gamma == 0.95
    batch = image_tasks(1, torch.Generator().manual_seed(0), ways=5, shots=2, queries=1, dtype=torch.float32)
    with torch.no_grad():
        assert mann(batch).shape == (1, 5, 5)


def test_error_messages():
    encoder = lf.MLP(in_features=DIM, hidden=(8,), out_features=5)
    with pytest.raises(ValueError, match="ways must be a positive integer"):
        MANN(encoder, ways=0)
    with pytest.raises(ValueError, match="gamma is the usage decay"):
        MANN(encoder, gamma=1.5)
    with pytest.raises(ValueError, match="unknown order 'random'"):
        MANN(encoder, order="random")
    with pytest.raises(ValueError, match="read_heads=5 needs at least as many memory slots"):
        MANN(encoder, memory_slots=4, read_heads=5)
    with pytest.raises(ValueError, match="pass in_shape="):
        MANN(nn.Flatten())
    assert MANN(nn.Flatten(), in_shape=(1, 4, 4), controller_size=4, memory_slots=4, memory_width=2, read_heads=1) is not None
    with pytest.raises(ValueError, match=r"this task has 4 classes but MANN was built for at most ways=3.*ways = 4"):
        tiny_mann(ways=3)(blobs(ways=4, dtype=torch.float64))


def test_initial_strength_sets_where_every_heads_read_strength_starts():
    mann = tiny_mann(read_heads=3, key_strength=True, initial_strength=10.0)
    head = mann.addressing(torch.zeros(1, mann.controller.hidden_size, dtype=torch.float64)).view(1, 3, -1)
    beta = 1 + torch.nn.functional.softplus(head[..., -1])
    torch.testing.assert_close(beta, torch.full_like(beta, 10.0))
    default = tiny_mann(read_heads=3, key_strength=True)  # the key and gate biases are left as initialised
    torch.testing.assert_close(mann.addressing.bias.view(3, -1)[:, :-1], default.addressing.bias.view(3, -1)[:, :-1])
    with_add = tiny_mann(read_heads=3, key_strength=True, add_vector=True, initial_strength=10.0)  # strength stays last
    head = with_add.addressing(torch.zeros(1, with_add.controller.hidden_size, dtype=torch.float64)).view(1, 3, -1)
    torch.testing.assert_close(1 + torch.nn.functional.softplus(head[..., -1]), beta)


@pytest.mark.parametrize("kwargs, match", [({"initial_strength": 5.0}, "needs key_strength"),
                                           ({"read_address": "before"}, "unknown read_address"),
                                           ({"key_strength": True, "initial_strength": 1.0}, "above 1")])
def test_read_strength_and_read_address_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tiny_mann(**kwargs)


def test_add_vector_is_what_gets_written_and_receives_gradients():
    """With ``add_vector`` the memory holds the add vectors, not the keys, and their outputs are trained."""
    mann = tiny_mann(read_heads=2, memory_width=4, key_strength=True, add_vector=True)
    width, per_head = 4, 2 * 4 + 2
    mann.meta_loss(blobs()).loss.backward()
    rows = mann.addressing.weight.grad.view(2, per_head, -1)[:, width : 2 * width]  # each head's add-vector outputs
    assert rows.abs().sum(-1).gt(0).all()
    with torch.no_grad():  # a key and an add vector that differ: the first written slot holds the add vector
        mann.addressing.weight.zero_()
        mann.addressing.bias.copy_(torch.tensor(([0.5] * width + [-0.7] * width + [-20.0, 0.0]) * 2, dtype=torch.float64))
        state, _ = mann.step(mann.initial_state(1, torch.zeros(1, dtype=torch.float64)), torch.zeros(1, 5, dtype=torch.float64),
                             torch.zeros(1, 3, dtype=torch.float64))
    torch.testing.assert_close(state.memory[0, 0], torch.full((width,), math.tanh(-0.7), dtype=torch.float64), atol=1e-6, rtol=0)
