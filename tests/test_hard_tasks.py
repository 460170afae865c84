"""Hard-task meta-batches (Sun et al. 2019): failure classes, and hard episodes drawn from them."""
import pytest
import torch

from learnfast import EpisodeSampler, EpisodeSpec
from learnfast.train.hard_tasks import HardTasks, failure_classes


def sampler(classes=12, items=6, ways=3):
    labels = torch.arange(classes).repeat_interleave(items) * 10 + 5  # class ids 5, 15, 25, ...
    return EpisodeSampler(torch.arange(labels.numel()), labels, EpisodeSpec(ways, 1, 2)), labels


def test_failure_class_is_the_lowest_query_accuracy_per_task():
    classes = torch.tensor([[5, 15, 25], [35, 45, 55]])
    query_y = torch.tensor([[0, 0, 1, 1, 2, 2], [0, 0, 1, 1, 2, 2]])
    predicted = torch.tensor([[0, 0, 1, 0, 2, 2],   # class 1 half right: the failure
                              [1, 2, 1, 1, 2, 0]])  # class 0 never right, class 2 half right
    logits = torch.nn.functional.one_hot(predicted, 3).float()
    assert failure_classes(classes, logits, query_y).tolist() == [15, 35]


def test_hard_classes_put_failures_first_and_top_up_with_others():
    source, _ = sampler()
    hard = HardTasks(source, every=2)
    hard.failed = [25, 95, 115, 45]
    rows = hard.hard_classes(50, torch.Generator().manual_seed(0))
    assert rows.shape == (50, 3)
    assert set(rows.flatten().tolist()) == {25, 95, 115, 45}  # only failures, all of them over 50 draws
    hard.failed = [25]
    rows = hard.hard_classes(20, torch.Generator().manual_seed(0))
    assert (rows == 25).any(dim=1).all()  # the one failure in every task, topped up with others
    assert all(row.unique().numel() == 3 for row in rows)


def test_one_meta_batch_in_k_is_drawn_from_recorded_failures():
    source, labels = sampler()
    hard = HardTasks(source, every=3)
    g = torch.Generator().manual_seed(1)
    recorded = []
    for iteration in range(7):  # meta-batches 1..7; 4 and 7 are hard
        assert hard.is_hard(iteration) == (iteration in (3, 6))
        batch, classes = hard.sample(4, g, iteration)
        # the batch's episodes are the returned classes', label j = classes[:, j]
        assert torch.equal(labels[batch.support_x], classes)  # one shot per class
        assert torch.equal(labels[batch.query_x], classes.repeat_interleave(2, dim=1))
        if iteration in (3, 6):
            assert set(classes.flatten().tolist()) <= set(recorded) and hard.failed == []
            recorded = []
        wrong = torch.zeros(4, 6, 3)  # every query predicted as class 0: classes 1 and 2 fail, class 1 first
        hard.record(classes, wrong, batch.query_y)
        recorded += classes[:, 1].tolist()
        assert hard.failed == recorded


def test_no_hard_batch_before_any_failure_and_bad_every():
    source, _ = sampler()
    assert not HardTasks(source, every=1).is_hard(0)
    with pytest.raises(ValueError, match="every must be >= 1"):
        HardTasks(source, every=0)
