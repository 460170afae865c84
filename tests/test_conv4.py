"""The Conv4 backbones: max-pool runs before an in-place ReLU, which must be the textbook block exactly."""
from pathlib import Path

import pytest
import torch
from torch import nn

from learnfast.models import Conv4, Conv4Maps
from learnfast.models.conv4 import conv_block
from learnfast.train.build import build_algorithm
from learnfast.train.checkpoint import load_checkpoint
from learnfast.train.config import RunConfig
from conftest import skip_without_simulators

ZOO = Path(__file__).resolve().parents[1] / "zoo"


def textbook(block: nn.Sequential) -> nn.Sequential:
    """The same conv and BatchNorm modules in the usual order: conv, BN, ReLU (not in place), max-pool."""
    conv, bn, *rest = block
    pool = [m for m in rest if isinstance(m, nn.MaxPool2d)]
    return nn.Sequential(conv, bn, nn.ReLU(), *pool)


@pytest.mark.parametrize("stride, pool", [(1, True), (2, False), (1, False)])
def test_block_equals_textbook_order_in_values_and_gradients(stride, pool):
    torch.manual_seed(0)
    block = conv_block(3, 8, stride=stride, pool=pool).double()
    with torch.no_grad():  # a BN shift well below zero so that whole pooling windows are negative
        block[1].bias.normal_(-0.5, 1.0)
        block[1].weight.normal_(0.0, 1.0)  # negative scales too (TADAM's FiLM can flip a channel)
    x = torch.randn(6, 3, 12, 12, dtype=torch.float64, requires_grad=True)
    target = torch.randn_like(textbook(block)(x))

    def value_and_grads(net):
        out = net(x)
        grads = torch.autograd.grad((out * target).sum(), [x, *block.parameters()])
        return out, grads

    out, grads = value_and_grads(block)
    want, want_grads = value_and_grads(textbook(block))
    assert (want == 0).float().mean() > 0.2  # the ReLU is active on a good share of the outputs
    torch.testing.assert_close(out, want, rtol=0, atol=1e-12)
    for g, w in zip(grads, want_grads):
        torch.testing.assert_close(g, w, rtol=0, atol=1e-12)


def test_second_order_gradient_matches_textbook_order():
    """MAML differentiates through the block's gradient: that must agree too (double backward)."""
    torch.manual_seed(1)
    block = conv_block(2, 4, pool=True).double()
    x = torch.randn(5, 2, 8, 8, dtype=torch.float64)

    def hvp(net):
        w = block[0].weight
        (g,) = torch.autograd.grad(net(x).pow(2).sum(), w, create_graph=True)
        return torch.autograd.grad(g.pow(2).sum(), w)[0]

    torch.testing.assert_close(hvp(block), hvp(textbook(block)), rtol=0, atol=1e-10)


@pytest.mark.parametrize("model, shape", [(Conv4(), (4, 64)), (Conv4(strided=True), (4, 64)), (Conv4Maps(), (4, 64, 7, 7))])
def test_shapes(model, shape):
    assert model(torch.randn(4, 1, 28, 28)).shape == shape


@pytest.mark.parametrize("path", sorted(ZOO.glob("*.safetensors")), ids=lambda p: p.name)
def test_every_zoo_checkpoint_loads_strictly(path):
    """ReLU and max-pool hold no weights, so reordering them leaves every stored key where it was."""
    ckpt = load_checkpoint(path)
    cfg = RunConfig.from_dict(ckpt.meta["config"], source=str(path))
    skip_without_simulators(cfg.data.dataset)
    algorithm = build_algorithm(cfg)
    algorithm.load_state_dict(ckpt.weights)  # strict: a missing or unexpected key raises
