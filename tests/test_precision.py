"""``[train] precision``: bf16 autocast of the training step, float32 weights, checkpoints and evaluation."""
import math

import pytest
import torch

import learnfast as lf
from learnfast.algorithms import ProtoNet
from learnfast.models import build_backbone
from learnfast.train.checkpoint import load_checkpoint
from learnfast.train.config import ConfigError
from learnfast.train.precision import autocast, check_precision
from learnfast.train.trainer import Trainer
from test_trainer import sinusoid_cfg


@pytest.mark.parametrize("bad", ["fp16", "float64", "bfloat16", ""])
def test_unknown_precision_is_a_config_error(bad):
    with pytest.raises(ConfigError, match="precision"):
        check_precision(bad)


def test_fp16_error_points_to_bf16():
    with pytest.raises(ConfigError, match="bf16"):
        check_precision("fp16")


def test_trainer_rejects_unknown_precision(tmp_path):
    with pytest.raises(ConfigError, match=r"\[train\] precision"):
        Trainer(sinusoid_cfg(precision="half"), tmp_path, progress=False)


def test_autocast_computes_convolutions_in_bf16_and_fp32_leaves_them():
    conv = torch.nn.Conv2d(1, 4, 3)
    x = torch.rand(2, 1, 8, 8)
    with autocast("bf16"):
        assert conv(x).dtype == torch.bfloat16
    with autocast("fp32"):
        assert conv(x).dtype == torch.float32


def protonet_grads(precision):
    torch.manual_seed(0)
    algorithm = ProtoNet(build_backbone("conv4", (1, 28, 28), None))
    g = torch.Generator().manual_seed(1)
    ways, queries = 5, 3
    batch = lf.Task(torch.rand(1, ways, 1, 28, 28, generator=g), torch.arange(ways)[None],
                    torch.rand(1, ways * queries, 1, 28, 28, generator=g), torch.arange(ways).repeat_interleave(queries)[None])
    with autocast(precision):
        loss = algorithm.meta_loss(batch).loss
    assert loss.dtype == torch.float32  # the loss itself is autocast to float32
    grads = torch.autograd.grad(loss, list(algorithm.parameters()))
    return loss.detach(), torch.cat([g.flatten() for g in grads])


def test_bf16_protonet_gradient_follows_fp32():
    loss32, grad32 = protonet_grads("fp32")
    loss16, grad16 = protonet_grads("bf16")
    assert grad16.dtype == torch.float32  # gradients of float32 weights stay float32
    assert abs(loss16 - loss32) < 0.02 * loss32.abs()
    cosine = torch.nn.functional.cosine_similarity(grad16, grad32, dim=0)
    assert cosine > 0.97, cosine  # bf16 keeps ~3 significant digits; measured 0.984
    assert not torch.equal(grad16, grad32)  # bf16 really ran


def test_bf16_training_keeps_float32_weights_and_checkpoints(tmp_path):
    summary = Trainer(sinusoid_cfg(iterations=6, precision="bf16"), tmp_path, progress=False).fit()
    assert math.isfinite(summary["loss"]) and math.isfinite(summary["best_score"])
    ckpt = load_checkpoint(tmp_path / "last.safetensors")
    assert ckpt.meta["config"]["train"]["precision"] == "bf16"
    assert all(w.dtype == torch.float32 and torch.isfinite(w).all() for w in ckpt.weights.values())
