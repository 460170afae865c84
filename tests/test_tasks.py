"""The task contract: Task, batching helpers, shape checks."""
import pytest
import torch

import learnfast as lf
from learnfast.tasks import check_batch


def make_task(s=4, q=6, d=3, offset=0.0):
    return lf.Task(torch.randn(s, d) + offset, torch.arange(s), torch.randn(q, d) + offset, torch.arange(q))


def test_unsqueeze_and_batch_size():
    task = make_task()
    batch = task.unsqueeze()
    assert batch.batch_size == 1
    assert [tuple(t.shape) for t in batch] == [(1, 4, 3), (1, 4), (1, 6, 3), (1, 6)]
    for a, b in zip(task, lf.task_at(batch, 0)):
        assert torch.equal(a, b)


def test_stack_unstack_round_trip():
    tasks = [make_task(offset=i) for i in range(3)]
    batch = lf.stack_tasks(tasks)
    assert batch.batch_size == 3
    for original, back in zip(tasks, lf.unstack_tasks(batch)):
        for a, b in zip(original, back):
            assert torch.equal(a, b)


def test_task_at_slice_stays_batched():
    batch = lf.stack_tasks([make_task(offset=i) for i in range(4)])
    part = lf.task_at(batch, slice(1, 3))
    assert part.batch_size == 2
    assert torch.equal(part.support_x, batch.support_x[1:3])


def test_cat_tasks():
    a = lf.stack_tasks([make_task() for _ in range(2)])
    b = lf.stack_tasks([make_task() for _ in range(3)])
    c = lf.cat_tasks([a, b])
    assert c.batch_size == 5
    assert torch.equal(c.query_x[2:], b.query_x)


def test_stack_errors():
    with pytest.raises(ValueError, match="at least one task"):
        lf.stack_tasks([])
    with pytest.raises(ValueError, match="cannot stack tasks of different shapes"):
        lf.stack_tasks([make_task(s=4), make_task(s=5)])


def test_to_casts_inputs_not_integer_labels():
    task = make_task().to(dtype=torch.float64)
    assert task.support_x.dtype == torch.float64 and task.query_x.dtype == torch.float64
    assert task.support_y.dtype == torch.long and task.query_y.dtype == torch.long
    regression = lf.Task(torch.randn(2, 1), torch.randn(2, 1), torch.randn(3, 1), torch.randn(3, 1)).to(dtype=torch.float64)
    assert all(t.dtype == torch.float64 for t in regression)


def test_check_batch_errors():
    with pytest.raises(TypeError, match="learnfast.Task"):
        check_batch((torch.zeros(1, 2), torch.zeros(1, 2), torch.zeros(1, 2), torch.zeros(1, 2)))
    with pytest.raises(ValueError, match="leading task dimension"):
        check_batch(lf.Task(torch.zeros(4), torch.zeros(4), torch.zeros(4), torch.zeros(4)))
    with pytest.raises(ValueError, match="leading task dimension"):
        check_batch(lf.Task(torch.zeros(2, 4, 3), torch.zeros(3, 4), torch.zeros(2, 5, 3), torch.zeros(2, 5)))
    with pytest.raises(ValueError, match="disagree in length"):
        check_batch(lf.Task(torch.zeros(2, 4, 3), torch.zeros(2, 3), torch.zeros(2, 5, 3), torch.zeros(2, 5)))
    check_batch(make_task().unsqueeze())  # a well-formed batch passes
