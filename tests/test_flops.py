"""benchmarks/flops.py: the FLOPs recorded from a training step's operators equal the hand count, and replays are faithful."""
import math
import sys
from pathlib import Path

import pytest
import torch

import learnfast as lf
from learnfast.algorithms import ProtoNet

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
WAYS, SHOTS, QUERIES, TASKS = 3, 1, 2, 2


@pytest.fixture
def flops(monkeypatch):
    monkeypatch.setattr(sys, "path", [str(BENCHMARKS), *sys.path])
    import flops

    return flops


def batch(tasks: int = TASKS) -> lf.Task:
    g = torch.Generator().manual_seed(0)
    labels = lambda k: torch.arange(WAYS).repeat_interleave(k).expand(tasks, -1)
    return lf.Task(torch.randn(tasks, WAYS * SHOTS, 1, 28, 28, generator=g), labels(SHOTS),
                   torch.randn(tasks, WAYS * QUERIES, 1, 28, 28, generator=g), labels(QUERIES))


def test_maml_second_order_count_matches_the_hand_count(flops):
    torch.manual_seed(0)
    algorithm = lf.MAML(lf.Conv4(out_features=WAYS), inner_lr=0.4, inner_steps=1, strategy="loop")
    recording = flops.record(lambda: algorithm.meta_loss(batch()).loss.backward())
    layers = flops.conv4_layer_flops((1, 28, 28), out_features=WAYS)
    hand = TASKS * flops.maml_second_order_flops(layers, WAYS * SHOTS, WAYS * QUERIES)
    # PyTorch's convolution double backward also forms the first layer's input gradient (the support
    # images'), which nothing needs: one first-layer convolution of the support set per task
    assert recording.total_flops == hand + TASKS * WAYS * SHOTS * layers[0]
    assert set(recording.by_operator()) == {"convolution", "convolution_backward", "addmm", "mm"}


def test_first_order_is_cheaper_than_second_order(flops):
    torch.manual_seed(0)
    counts = {}
    for first_order in (False, True):
        algorithm = lf.MAML(lf.Conv4(out_features=WAYS), inner_lr=0.4, first_order=first_order, strategy="loop")
        counts[first_order] = flops.record(lambda: algorithm.meta_loss(batch()).loss.backward()).total_flops
    assert counts[True] < 0.75 * counts[False]


def test_protonet_episode_count_matches_the_hand_count(flops):
    torch.manual_seed(0)
    algorithm = ProtoNet(lf.Conv4())
    recording = flops.record(lambda: algorithm.meta_loss(batch(1)).loss.backward())
    by_operator = recording.by_operator()
    conv = by_operator.pop("convolution") + by_operator.pop("convolution_backward")
    assert conv == flops.forward_backward_flops(flops.conv4_layer_flops((1, 28, 28)), WAYS * (SHOTS + QUERIES))
    assert set(by_operator) <= {"bmm", "mm"} and sum(by_operator.values()) < 1e-3 * conv  # distances to the prototypes


def test_stand_ins_keep_the_recorded_layout(flops):
    x = torch.randn(4, 3, 5, 5).to(memory_format=torch.channels_last)[:, :, 1:]
    again = flops._stand_in(flops._spec(x), torch.Generator().manual_seed(0))
    assert again.shape == x.shape and again.stride() == x.stride() and again.dtype == x.dtype
    nested = flops._stand_in(flops._spec([x, (1, 2), [True, False]]), torch.Generator())
    assert isinstance(nested, list) and nested[1] == (1, 2) and nested[2] == [True, False]


def test_attainable_time_is_positive_and_counts_every_call(flops):
    a, b = torch.randn(64, 64), torch.randn(64, 64)
    once = flops.record(lambda: a @ b)
    thrice = flops.record(lambda: [a @ b for _ in range(3)])
    assert once.total_flops == 2 * 64**3 and thrice.total_flops == 3 * once.total_flops
    assert sum(thrice.ops.values()) == 3 and len(thrice.ops) == 1
    seconds = flops.attainable_seconds(once, repeats=2)
    assert 0 < seconds < 1 and math.isfinite(seconds)
