"""Checkpoints: full round trip, atomic writes, and clear errors for missing/truncated/foreign files."""
import math
import os

import pytest
import torch
from safetensors.torch import save_file

import learnfast as lf
from learnfast.train.checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint


def trained_state():
    torch.manual_seed(0)
    model = lf.MLP(in_features=3, hidden=(5,), out_features=2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.8, 0.95))
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(4, 3)).pow(2).mean().backward()
        opt.step()
    gen = torch.Generator().manual_seed(5)
    torch.rand(3, generator=gen)
    return model, opt, gen


def write_checkpoint(path):
    model, opt, gen = trained_state()
    meta = {"iteration": 3, "best_score": -math.inf, "config": {"train": {"ways": 5}}, "note": "ünïcode"}
    save_checkpoint(path, Checkpoint(weights=model.state_dict(), meta=meta, optimizer=opt.state_dict(),
                                     rng={"train": gen.get_state()}))
    return model, opt, gen, meta


def test_round_trip(tmp_path):
    path = tmp_path / "sub" / "ckpt.safetensors"
    model, opt, gen, meta = write_checkpoint(path)
    ckpt = load_checkpoint(path)

    assert ckpt.meta == meta
    assert ckpt.weights.keys() == model.state_dict().keys()
    for k, v in model.state_dict().items():
        assert torch.equal(ckpt.weights[k], v), k

    # optimizer state: tensors (exp_avg, exp_avg_sq, step) and param_groups survive; it loads into Adam
    original = opt.state_dict()
    assert ckpt.optimizer["state"].keys() == original["state"].keys()
    for idx, state in original["state"].items():
        assert state.keys() == ckpt.optimizer["state"][idx].keys()
        for name, value in state.items():
            assert torch.equal(torch.as_tensor(ckpt.optimizer["state"][idx][name]), torch.as_tensor(value)), (idx, name)
    assert ckpt.optimizer["param_groups"][0]["lr"] == 1e-3
    assert list(ckpt.optimizer["param_groups"][0]["betas"]) == [0.8, 0.95]

    restored_model = lf.MLP(in_features=3, hidden=(5,), out_features=2)
    restored_model.load_state_dict(ckpt.weights)
    restored_opt = torch.optim.Adam(restored_model.parameters(), lr=0.5)
    restored_opt.load_state_dict(ckpt.optimizer)
    # one more identical step from both gives identical weights
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(1))
    for m, o in ((model, opt), (restored_model, restored_opt)):
        o.zero_grad()
        m(x).pow(2).mean().backward()
        o.step()
    for (k, a), (_, b) in zip(model.state_dict().items(), restored_model.state_dict().items()):
        assert torch.equal(a, b), k

    # rng state: the restored generator continues the same stream
    restored_gen = torch.Generator()
    restored_gen.set_state(ckpt.rng["train"])
    assert torch.equal(torch.rand(5, generator=restored_gen), torch.rand(5, generator=gen))


def test_without_optimizer(tmp_path):
    path = tmp_path / "w.safetensors"
    save_checkpoint(path, Checkpoint(weights={"w": torch.arange(6.0).view(2, 3)}, meta={"a": 1}))
    ckpt = load_checkpoint(path)
    assert ckpt.optimizer is None and ckpt.rng == {}
    assert torch.equal(ckpt.weights["w"], torch.arange(6.0).view(2, 3))


def test_save_is_atomic_and_overwrites(tmp_path):
    path = tmp_path / "last.safetensors"
    write_checkpoint(path)
    save_checkpoint(path, Checkpoint(weights={"w": torch.ones(2)}, meta={"iteration": 9}))
    assert load_checkpoint(path).meta == {"iteration": 9}
    assert sorted(os.listdir(tmp_path)) == ["last.safetensors"]  # no .tmp left behind


def test_failed_save_keeps_previous_checkpoint(tmp_path):
    path = tmp_path / "last.safetensors"
    write_checkpoint(path)
    with pytest.raises(TypeError):  # meta that is not JSON-able fails before anything is replaced
        save_checkpoint(path, Checkpoint(weights={"w": torch.ones(2)}, meta={"bad": object()}))
    assert load_checkpoint(path).meta["iteration"] == 3
    assert sorted(os.listdir(tmp_path)) == ["last.safetensors"]


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.999])
def test_truncated_file(tmp_path, keep):
    path = tmp_path / "ckpt.safetensors"
    write_checkpoint(path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(CheckpointError, match="truncated or not a safetensors file"):
        load_checkpoint(path)


@pytest.mark.parametrize("size", [3, 100, 5000])
def test_random_bytes(tmp_path, size):
    path = tmp_path / "junk.safetensors"
    path.write_bytes(torch.randint(0, 256, (size,), generator=torch.Generator().manual_seed(size), dtype=torch.uint8).numpy().tobytes())
    with pytest.raises(CheckpointError, match="truncated or not a safetensors file"):
        load_checkpoint(path)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "nope.safetensors")


def test_directory_is_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(tmp_path)


def test_foreign_safetensors_file(tmp_path):
    path = tmp_path / "model.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(CheckpointError, match="not a learnfast checkpoint"):
        load_checkpoint(path)
