"""EpisodeSampler: structure of episodes (property-based), seeding, splits, and error messages."""
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from learnfast import EpisodeSampler, EpisodeSpec


def dataset(counts, id_scale=7, id_shift=-100):
    """Items ``x = arange(n)`` (each input is its own index); class ids are arbitrary ints."""
    labels = torch.cat([torch.full((c,), id_scale * i + id_shift, dtype=torch.long) for i, c in enumerate(counts)])
    perm = torch.randperm(labels.numel(), generator=torch.Generator().manual_seed(len(counts)))
    labels = labels[perm]  # interleave classes so the sampler cannot rely on sorted input
    return torch.arange(labels.numel()), labels


@st.composite
def episode_setups(draw):
    ways = draw(st.integers(1, 5))
    shots = draw(st.integers(1, 3))
    queries = draw(st.integers(1, 3))
    need = shots + queries
    n_classes = draw(st.integers(ways, ways + 4))
    counts = draw(st.lists(st.integers(need, need + 4), min_size=n_classes, max_size=n_classes))
    seed = draw(st.integers(0, 2**31 - 1))
    batch = draw(st.integers(1, 4))
    return ways, shots, queries, counts, seed, batch


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(episode_setups())
def test_episode_structure(setup):
    ways, shots, queries, counts, seed, batch_size = setup
    x, labels = dataset(counts)
    sampler = EpisodeSampler(x, labels, EpisodeSpec(ways, shots, queries))
    batch = sampler.sample(batch_size, torch.Generator().manual_seed(seed))

    assert batch.support_x.shape == (batch_size, ways * shots)
    assert batch.query_x.shape == (batch_size, ways * queries)
    # labels 0..ways-1, class-major, `shots` (resp. `queries`) per class
    assert torch.equal(batch.support_y, torch.arange(ways).repeat_interleave(shots).expand(batch_size, -1))
    assert torch.equal(batch.query_y, torch.arange(ways).repeat_interleave(queries).expand(batch_size, -1))
    for b in range(batch_size):
        s_items, q_items = batch.support_x[b], batch.query_x[b]
        all_items = torch.cat([s_items, q_items])
        # items are real dataset items (no padding index leaking in) and never repeat / overlap
        assert bool(((all_items >= 0) & (all_items < x.numel())).all())
        assert all_items.unique().numel() == all_items.numel()
        assert not set(s_items.tolist()) & set(q_items.tolist())
        # each episode label maps to exactly one original class, and the classes are distinct
        original = []
        for j in range(ways):
            s_cls = labels[s_items[batch.support_y[b] == j]].unique()
            q_cls = labels[q_items[batch.query_y[b] == j]].unique()
            assert s_cls.numel() == 1 and torch.equal(s_cls, q_cls)
            original.append(int(s_cls))
        assert len(set(original)) == ways


def test_same_seed_same_batch_different_seed_different():
    x, labels = dataset([10] * 12)
    sampler = EpisodeSampler(x, labels, EpisodeSpec(5, 2, 3))
    a = sampler.sample(8, torch.Generator().manual_seed(3))
    b = sampler.sample(8, torch.Generator().manual_seed(3))
    c = sampler.sample(8, torch.Generator().manual_seed(4))
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not torch.equal(a.support_x, c.support_x)


def test_transform_applied_to_inputs():
    x, labels = dataset([6] * 4)
    sampler = EpisodeSampler(x, labels, EpisodeSpec(2, 1, 2), transform=lambda t: t.double() * 10)
    plain = EpisodeSampler(x, labels, EpisodeSpec(2, 1, 2))
    a = sampler.sample(3, torch.Generator().manual_seed(0))
    b = plain.sample(3, torch.Generator().manual_seed(0))
    assert a.support_x.dtype == torch.float64
    assert torch.equal(a.query_x, b.query_x.double() * 10)


def test_multidimensional_inputs_keep_feature_shape():
    labels = torch.arange(6).repeat_interleave(5)
    x = torch.arange(30, dtype=torch.float32).view(30, 1, 1, 1).expand(30, 1, 4, 3).contiguous()
    batch = EpisodeSampler(x, labels, EpisodeSpec(3, 2, 2)).sample(2, torch.Generator().manual_seed(0))
    assert batch.support_x.shape == (2, 6, 1, 4, 3) and batch.query_x.shape == (2, 6, 1, 4, 3)
    item = batch.support_x[:, :, 0, 0, 0].long()
    # items of one episode label share one class
    for b in range(2):
        for j in range(3):
            assert labels[item[b, 2 * j: 2 * j + 2]].unique().numel() == 1


def test_class_split_restricts_classes():
    x, labels = dataset([8] * 10)
    split = labels.unique()[[1, 4, 5, 8]]
    sampler = EpisodeSampler(x, labels, EpisodeSpec(3, 2, 2), classes=split)
    assert sampler.num_classes == 4
    batch = sampler.sample(50, torch.Generator().manual_seed(1))
    used = labels[torch.cat([batch.support_x.flatten(), batch.query_x.flatten()])].unique()
    assert set(used.tolist()) <= set(split.tolist())
    assert set(used.tolist()) == set(split.tolist())  # 50 episodes of 3 of 4 classes cover all of them


def test_unequal_class_sizes_and_small_classes_left_out():
    counts = [3, 4, 9, 2, 5, 20]  # shots+queries = 4: classes of size 3 and 2 cannot be used
    x, labels = dataset(counts)
    sampler = EpisodeSampler(x, labels, EpisodeSpec(2, 1, 3))
    assert sampler.num_classes == 4
    batch = sampler.sample(100, torch.Generator().manual_seed(0))
    items = torch.cat([batch.support_x.flatten(1), batch.query_x.flatten(1)], dim=1)
    used = labels[items].unique()
    small = {7 * i - 100 for i, c in enumerate(counts) if c < 4}
    assert not set(used.tolist()) & small
    for row in items:  # items never repeat within an episode, even in the size-4 class
        assert row.unique().numel() == row.numel()



def test_sample_from_given_classes():
    x, labels = dataset([6] * 9)
    sampler = EpisodeSampler(x, labels, EpisodeSpec(3, 2, 1))
    ids = labels.unique()
    classes = torch.stack([ids[[4, 0, 7]], ids[[2, 8, 1]]])  # (B=2, ways=3), any order
    batch = sampler.sample_from(classes, torch.Generator().manual_seed(0))
    for b in range(2):
        for j in range(3):  # episode label j is class classes[b, j], in support and query
            assert set(labels[batch.support_x[b][batch.support_y[b] == j]].tolist()) == {int(classes[b, j])}
            assert set(labels[batch.query_x[b][batch.query_y[b] == j]].tolist()) == {int(classes[b, j])}
        items = torch.cat([batch.support_x[b], batch.query_x[b]])
        assert items.unique().numel() == items.numel()


def test_sample_is_draw_classes_then_sample_from():
    x, labels = dataset([6] * 9)
    sampler = EpisodeSampler(x, labels, EpisodeSpec(3, 2, 1))
    g = torch.Generator().manual_seed(5)
    classes = sampler.draw_classes(4, g)
    assert classes.shape == (4, 3) and all(row.unique().numel() == 3 for row in classes)
    assert set(classes.flatten().tolist()) <= set(labels.tolist())
    by_parts = sampler.sample_from(classes, g)
    whole = sampler.sample(4, torch.Generator().manual_seed(5))
    assert all(torch.equal(u, v) for u, v in zip(by_parts, whole))


def test_sample_from_errors():
    x, labels = dataset([6] * 5 + [2])  # the last class is too small for shots + queries = 3
    sampler = EpisodeSampler(x, labels, EpisodeSpec(2, 2, 1))
    ids, g = labels.unique(), torch.Generator()
    with pytest.raises(ValueError, match=r"\(batch, ways=2\) tensor"):
        sampler.sample_from(ids[:3].view(1, 3), g)
    with pytest.raises(ValueError, match="must be distinct"):
        sampler.sample_from(ids[[1, 1]].view(1, 2), g)
    with pytest.raises(ValueError, match=r"classes \[12345\] are not available"):
        sampler.sample_from(torch.tensor([[int(ids[0]), 12345]]), g)
    small = 7 * 5 - 100  # id of class 5 in `dataset`
    with pytest.raises(ValueError, match="fewer than shots \\+ queries = 3 items"):
        sampler.sample_from(torch.tensor([[int(ids[0]), small]]), g)


# -- error paths ---------------------------------------------------------------------------------

def test_ways_more_than_classes():
    x, labels = dataset([5] * 3)
    with pytest.raises(ValueError, match=r"ways=4 but only 3 classes are available"):
        EpisodeSampler(x, labels, EpisodeSpec(4, 1, 1))


def test_ways_more_than_split_classes():
    x, labels = dataset([5] * 6)
    with pytest.raises(ValueError, match=r"only 2 classes are available"):
        EpisodeSampler(x, labels, EpisodeSpec(3, 1, 1), classes=labels.unique()[:2])


def test_shots_plus_queries_more_than_class_size():
    x, labels = dataset([5, 5, 5])
    with pytest.raises(ValueError, match=r"shots \+ queries = 6"):
        EpisodeSampler(x, labels, EpisodeSpec(2, 3, 3))


def test_empty_dataset():
    with pytest.raises(ValueError, match="dataset is empty"):
        EpisodeSampler(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long), EpisodeSpec(1, 1, 1))


def test_labels_length_mismatch():
    with pytest.raises(ValueError, match="one label per input"):
        EpisodeSampler(torch.zeros(10, 3), torch.zeros(9, dtype=torch.long), EpisodeSpec(1, 1, 1))
    with pytest.raises(ValueError, match="one label per input"):
        EpisodeSampler(torch.zeros(10, 3), torch.zeros(10, 1, dtype=torch.long), EpisodeSpec(1, 1, 1))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bool])
def test_non_integer_labels(dtype):
    with pytest.raises(ValueError, match="integer class ids"):
        EpisodeSampler(torch.zeros(10, 3), torch.zeros(10, dtype=dtype), EpisodeSpec(1, 1, 1))


@pytest.mark.parametrize("field", ["ways", "shots", "queries"])
@pytest.mark.parametrize("value", [0, -1])
def test_spec_rejects_non_positive(field, value):
    kwargs = {"ways": 2, "shots": 1, "queries": 1, field: value}
    with pytest.raises(ValueError, match=f"{field} must be a positive integer"):
        EpisodeSpec(**kwargs)


def test_spec_rejects_float():
    with pytest.raises(ValueError, match="shots must be a positive integer"):
        EpisodeSpec(5, 1.5, 1)


def test_split_with_absent_class_ids():
    x, labels = dataset([5] * 4)
    split = torch.cat([labels.unique()[:2], torch.tensor([12345, 54321])])
    with pytest.raises(ValueError, match=r"names 2 class ids absent from labels"):
        EpisodeSampler(x, labels, EpisodeSpec(2, 1, 1), classes=split)


@pytest.mark.slow
@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(episode_setups())
def test_episode_structure_many_examples(setup):
    test_episode_structure.hypothesis.inner_test(setup)
