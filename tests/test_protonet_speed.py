"""benchmarks/protonet_speed.py without easyfsl: the layouts its rows compare, and its missing-peer error."""
import copy
import sys
from pathlib import Path

import pytest
import torch

import learnfast as lf

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture
def protonet_speed(monkeypatch):
    monkeypatch.setattr(sys, "path", [str(BENCHMARKS), *sys.path])
    import protonet_speed

    return protonet_speed


def conv_weights(module):
    return [m.weight for m in module.modules() if isinstance(m, torch.nn.Conv2d)]


def test_learnfast_conv_weights_are_channels_last():
    for model in (lf.Conv4(), lf.Conv4(strided=True), lf.Conv4Maps()):
        assert all(w.is_contiguous(memory_format=torch.channels_last) for w in conv_weights(model))


def test_conv4_output_does_not_depend_on_the_weight_layout():
    torch.manual_seed(0)
    model = lf.Conv4().double()
    default = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    x = torch.rand(6, 1, 28, 28, dtype=torch.float64)
    torch.testing.assert_close(model(x), default(x))


def test_plain_copy_has_default_layout_same_values_and_leaves_the_original(protonet_speed):
    torch.manual_seed(0)
    original = lf.Conv4()
    reference = copy.deepcopy(original)
    mine = copy.deepcopy(original)
    theirs = protonet_speed.plain(mine)
    assert all(w.is_contiguous() for w in conv_weights(theirs))
    # (a one-channel 3x3 kernel is both layouts at once; the 64-channel ones tell them apart)
    assert not any(w.is_contiguous(memory_format=torch.channels_last) for w in conv_weights(theirs) if w.shape[1] > 1)
    for a, b in zip(conv_weights(theirs), conv_weights(reference)):
        assert torch.equal(a, b)
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in conv_weights(original))
    # the textbook block order, conv, BN, ReLU, max-pool, with an out-of-place ReLU
    assert [type(m).__name__ for m in theirs[:4]] == ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"]
    assert not theirs[2].inplace
    x = torch.rand(4, 1, 28, 28)
    torch.testing.assert_close(theirs(x), reference(x))


def test_missing_easyfsl_says_how_to_install(protonet_speed, monkeypatch):
    monkeypatch.setitem(sys.modules, "easyfsl", None)  # import easyfsl -> ImportError
    with pytest.raises(SystemExit, match="pip install --no-deps easyfsl"):
        protonet_speed.import_easyfsl()
