"""[model] init and freeze: a backbone started from a checkpoint and held fixed; per_task's CPU path."""
import pytest
import torch
from torch.func import vmap

from learnfast.algorithms.base import per_task
from learnfast.models import Conv4, Frozen, unwrap
from learnfast.train.build import build_algorithm, load_backbone
from learnfast.train.checkpoint import Checkpoint, save_checkpoint
from learnfast.train.config import ConfigError, RunConfig


def config(name="protonet", **model):
    cfg = RunConfig.from_dict({"algorithm": {"name": name}, "model": {"backbone": "conv4", "hidden": 8, **model}})
    cfg.train.ways = cfg.eval.ways = 5
    return cfg


def save_algorithm(path, algorithm):
    save_checkpoint(path, Checkpoint(weights=algorithm.state_dict(), meta={}))


def test_frozen_backbone_gets_no_gradient_and_stays_in_eval_mode():
    encoder = Frozen(Conv4(hidden=8))
    encoder.train()
    assert encoder.training and not encoder.module.training
    x = torch.rand(6, 1, 28, 28, requires_grad=True)
    out = encoder(x)
    assert not out.requires_grad and all(not p.requires_grad for p in encoder.parameters())
    assert unwrap(encoder) is encoder.module and unwrap(encoder.module) is encoder.module


def test_freeze_leaves_only_the_algorithms_own_parameters_to_meta_learn():
    mann = build_algorithm(config("mann", freeze=True))
    assert isinstance(mann.model, Frozen)
    names = set(mann.meta_params())
    assert names and not any(n.startswith("model.") for n in names)
    assert all(n.split(".")[0] in ("controller", "addressing", "output") for n in names)


@pytest.mark.parametrize("name", ["maml", "mtl", "tadam", "baseline"])
def test_freeze_refused_where_the_backbone_is_adapted(name):
    with pytest.raises(ConfigError, match="cannot be held fixed"):
        build_algorithm(config(name, backbone="conv4", freeze=True))


@pytest.mark.parametrize("frozen_source", [False, True])
def test_init_copies_every_backbone_weight(tmp_path, frozen_source):
    source = build_algorithm(config("protonet", freeze=frozen_source), seed=1)
    save_algorithm(tmp_path / "source.safetensors", source)
    target = build_algorithm(config("mann", freeze=True), seed=2)
    load_backbone(target, tmp_path / "source.safetensors")
    for key, value in unwrap(source.model).state_dict().items():
        assert torch.equal(unwrap(target.model).state_dict()[key], value), key
    x = torch.rand(5, 1, 28, 28)
    assert torch.equal(target.model(x), unwrap(source.model)(x))


def test_init_keeps_a_fresh_head_when_the_checkpoint_has_none(tmp_path):
    save_algorithm(tmp_path / "features.safetensors", build_algorithm(config("protonet"), seed=1))
    maml = build_algorithm(config("maml"), seed=2)
    head = maml.model.head.weight.clone()
    load_backbone(maml, tmp_path / "features.safetensors")
    assert torch.equal(maml.model.head.weight, head)


def test_init_from_a_different_backbone_names_the_mismatch(tmp_path):
    save_algorithm(tmp_path / "wide.safetensors", build_algorithm(config("protonet", hidden=16)))
    with pytest.raises(ConfigError, match="different shapes"):
        load_backbone(build_algorithm(config("protonet")), tmp_path / "wide.safetensors")


def test_init_needs_backbone_weights(tmp_path):
    save_checkpoint(tmp_path / "empty.safetensors", Checkpoint(weights={"scale": torch.ones(1)}, meta={}))
    with pytest.raises(ConfigError, match="no backbone weights"):
        load_backbone(build_algorithm(config("protonet")), tmp_path / "empty.safetensors")


def test_per_task_on_cpu_equals_vmap_in_value_and_gradient():
    torch.manual_seed(0)
    encoder = Conv4(hidden=8).double()
    x = torch.rand(3, 10, 1, 28, 28, dtype=torch.float64)
    looped = per_task(encoder, x)
    grads_looped = torch.autograd.grad(looped.square().sum(), list(encoder.parameters()))
    batched = vmap(encoder)(x)
    grads_batched = torch.autograd.grad(batched.square().sum(), list(encoder.parameters()))
    torch.testing.assert_close(looped, batched, rtol=0, atol=1e-10)
    for a, b in zip(grads_looped, grads_batched):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)
    # per-task statistics: a task's features do not depend on the other tasks of the batch
    torch.testing.assert_close(per_task(encoder, x[1:2])[0], looped[1], rtol=0, atol=1e-12)


def test_init_keeps_a_fresh_head_when_the_checkpoint_has_other_ways(tmp_path):
    five = build_algorithm(config("maml"), seed=1)
    save_algorithm(tmp_path / "five.safetensors", five)
    cfg = config("maml")
    cfg.train.ways = cfg.eval.ways = 20
    twenty = build_algorithm(cfg, seed=2)
    head = twenty.model.head.weight.clone()
    load_backbone(twenty, tmp_path / "five.safetensors")
    assert twenty.model.head.weight.shape == (20, head.shape[1]) and torch.equal(twenty.model.head.weight, head)
    body = {k: v for k, v in five.model.state_dict().items() if not k.startswith("head.")}
    assert body and all(torch.equal(twenty.model.state_dict()[k], v) for k, v in body.items())
