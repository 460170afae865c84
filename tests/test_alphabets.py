"""Episodes from one alphabet: every episode's classes share an alphabet; same- vs different-alphabet
task-embedding distances by hand; on Omniglot with a random TADAM and with raw pixels."""
import math

import numpy as np
import pytest
import torch

import learnfast as lf
from learnfast.data.alphabets import alphabet_distances, alphabet_samplers
from learnfast.data.omniglot import ClassSplit, omniglot_split

SIZES = {"Alpha": 4, "Beta": 5, "Gamma": 2}  # classes per alphabet; Gamma is too small for 3-way episodes


def synthetic_split(items_per_class=4):
    """Classes of three alphabets; every item of class k is a 2x2 image filled with k."""
    alphabets = [a for a, n in SIZES.items() for _ in range(n)]
    classes = len(alphabets)
    labels = torch.arange(classes).repeat_interleave(items_per_class)
    images = labels.view(-1, 1, 1).expand(-1, 2, 2).to(torch.uint8).clone()
    return ClassSplit(images, labels, [np.str_(a) for a in alphabets])  # numpy strings, as from the decode cache


def test_every_episode_draws_from_one_alphabet():
    split = synthetic_split()
    samplers = alphabet_samplers(split, lf.EpisodeSpec(ways=3, shots=1, queries=2))
    assert list(samplers) == ["Alpha", "Beta"] and all(type(a) is str for a in samplers)  # Gamma left out
    for name, sampler in samplers.items():
        assert sampler.num_classes == SIZES[name]
        batch = sampler.sample(50, torch.Generator().manual_seed(0))
        for t in range(50):
            classes = torch.cat([batch.support_x[t], batch.query_x[t]])[:, 0, 0].long().unique()
            assert len(classes) == 3
            assert {split.class_alphabets[k] for k in classes.tolist()} == {name}


def test_too_few_alphabets():
    with pytest.raises(ValueError, match=r"only 1 alphabet\(s\) have at least ways=5 classes .*'Beta': 5"):
        alphabet_samplers(synthetic_split(), lf.EpisodeSpec(ways=5, shots=1, queries=1))


def test_distances_by_hand():
    """Embedding = the alphabet's offset: same-alphabet pairs are at 0, different ones at |10 - 0|."""
    samplers = alphabet_samplers(synthetic_split(), lf.EpisodeSpec(ways=3, shots=1, queries=1))
    offset = lambda task: (task.support_x[:, :, 0, 0].float().min(1, keepdim=True).values >= 4).double() * 10.0  # Beta's ids are 4..8
    result = alphabet_distances(offset, samplers, episodes=5, generator=torch.Generator().manual_seed(0))
    assert result.same == 0.0 and result.different == 10.0
    assert result.same_pairs == 2 * (5 * 4 // 2) and result.different_pairs == 5 * 5


def test_distances_of_random_points_are_means_of_cdist():
    samplers = alphabet_samplers(synthetic_split(), lf.EpisodeSpec(ways=3, shots=1, queries=1))
    points = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)  # (alphabet, episode, D)
    calls = iter(points)
    result = alphabet_distances(lambda task: next(calls), samplers, episodes=3, generator=torch.Generator().manual_seed(0))
    same = [torch.dist(points[a, i], points[a, j]) for a in range(2) for i in range(3) for j in range(i + 1, 3)]
    different = [torch.dist(points[0, i], points[1, j]) for i in range(3) for j in range(3)]
    assert math.isclose(result.same, torch.stack(same).mean().item(), rel_tol=1e-12)
    assert math.isclose(result.different, torch.stack(different).mean().item(), rel_tol=1e-12)
    assert math.isclose(result.ratio, result.same / result.different)


def test_distance_errors():
    samplers = alphabet_samplers(synthetic_split(), lf.EpisodeSpec(ways=3, shots=1, queries=1))
    with pytest.raises(ValueError, match="episodes must be >= 2"):
        alphabet_distances(lambda t: t.support_x.flatten(1).float(), samplers, 1, torch.Generator())
    with pytest.raises(ValueError, match="at least two alphabets"):
        alphabet_distances(lambda t: t.support_x.flatten(1).float(), {"Alpha": samplers["Alpha"]}, 3, torch.Generator())


# -- Omniglot ------------------------------------------------------------------------------------

def to_float(x):
    return (x.float() / 255.0).unsqueeze(-3)


@pytest.fixture(scope="module")
def evaluation_samplers(data_root):
    split = omniglot_split("lake", "test", data_root)
    return split, alphabet_samplers(split, lf.EpisodeSpec(ways=5, shots=1, queries=1), transform=to_float)


def test_omniglot_episodes_share_one_alphabet(evaluation_samplers):
    split, samplers = evaluation_samplers
    assert len(samplers) == 20  # every evaluation alphabet has at least 5 characters
    owner = {img.numpy().tobytes(): split.class_alphabets[int(y)] for img, y in zip(split.images, split.labels)}
    for name in ("Tengwar", "Kannada"):
        batch = samplers[name].sample(4, torch.Generator().manual_seed(0))
        for x in torch.cat([batch.support_x, batch.query_x], dim=1).flatten(0, 1):
            assert owner[(x[0] * 255).round().to(torch.uint8).numpy().tobytes()] == name


def test_task_embedding_distances_are_finite_on_random_weights(evaluation_samplers):
    _, samplers = evaluation_samplers
    torch.manual_seed(0)
    tadam = lf.TADAM(lf.Conv4(hidden=4))
    result = alphabet_distances(tadam.embed_task, samplers, episodes=3, generator=torch.Generator().manual_seed(0))
    assert math.isfinite(result.same) and math.isfinite(result.different) and result.same > 0
    assert result.same_pairs == 20 * 3 and result.different_pairs == 9 * 20 * 19 // 2


def test_raw_pixel_task_embeddings_put_same_alphabet_tasks_closer(evaluation_samplers):
    """Plumbing check with no learning: even the mean support image tells alphabets apart a little."""
    _, samplers = evaluation_samplers
    mean_image = lambda task: task.support_x.flatten(2).mean(1)  # (B, 784)
    result = alphabet_distances(mean_image, samplers, episodes=4, generator=torch.Generator().manual_seed(0))
    assert result.same < result.different
