"""LearnedOptimizer: a trained LSTM optimizer in an ordinary PyTorch training loop."""
import copy

import pytest
import torch

from conftest import REPO_ROOT
from learnfast.optim import LearnedOptimizer, LSTMOptimizer, MomentumLSTM, load_lstm_optimizer
from learnfast.optim.checkpoint import FORMAT
from learnfast.train import checkpoint as train_checkpoint

ZOO = REPO_ROOT / "zoo"


def regression(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 10, generator=g)
    return x, x @ torch.randn(10, 1, generator=g) + 0.1 * torch.randn(64, 1, generator=g)


def train(model, opt, x, y, steps):
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("name", ["l2o-quadratic.safetensors", "l2o-mlp.safetensors"])
def test_trains_an_ordinary_module_in_an_ordinary_loop(name):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(10, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    x, y = regression()
    losses = train(model, LearnedOptimizer(model.parameters(), ZOO / name), x, y, 100)
    assert losses[-1] < 0.2 * losses[0], (losses[0], losses[-1])


@pytest.mark.parametrize("make, fields", [(LSTMOptimizer, {"hidden", "cell"}),
                                          (lambda: MomentumLSTM(0.01), {"hidden", "cell", "velocity"})], ids=["lstm", "momentum-lstm"])
def test_state_dict_round_trip_and_resume_give_the_same_next_step(make, fields):
    torch.manual_seed(0)
    net = make()
    model = torch.nn.Linear(10, 1)
    x, y = regression(1)
    opt = LearnedOptimizer([{"params": [model.weight]}, {"params": [model.bias], "scale": 0.5}], net)
    train(model, opt, x, y, 5)
    saved_model, saved_opt = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
    assert set(saved_opt["state"][0]) == {"step"} | fields and saved_opt["state"][0]["hidden"].shape == (2, 10, 20)
    train(model, opt, x, y, 2)  # the uninterrupted run

    resumed = torch.nn.Linear(10, 1)
    resumed.load_state_dict(saved_model)
    opt2 = LearnedOptimizer([{"params": [resumed.weight]}, {"params": [resumed.bias], "scale": 0.5}], net)
    opt2.load_state_dict(saved_opt)
    assert opt2.param_groups[1]["scale"] == 0.5
    train(resumed, opt2, x, y, 2)
    for a, b in zip(model.parameters(), resumed.parameters()):
        assert torch.equal(a, b)
    assert opt.state_dict()["state"][1]["step"] == 7 and torch.equal(opt.state[model.bias]["cell"], opt2.state[resumed.bias]["cell"])


def test_closure_and_parameters_without_gradient():
    model = torch.nn.Linear(3, 1)
    frozen = torch.nn.Parameter(torch.ones(2))
    opt = LearnedOptimizer([*model.parameters(), frozen], LSTMOptimizer())
    x = torch.randn(4, 3)

    def closure():
        opt.zero_grad()
        loss = model(x).pow(2).mean()
        loss.backward()
        return loss

    assert torch.isfinite(opt.step(closure))
    assert torch.equal(frozen, torch.ones(2)) and frozen not in opt.state


def test_non_finite_gradient_is_a_clear_error_and_changes_nothing():
    model = torch.nn.Linear(3, 1)
    opt = LearnedOptimizer(model.parameters(), LSTMOptimizer())
    before = copy.deepcopy(model.state_dict())
    model(torch.full((2, 3), float("nan"))).sum().backward()
    with pytest.raises(FloatingPointError, match="NaN or inf; no parameter was changed"):
        opt.step()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_a_checkpoint_of_another_kind_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="is a maml checkpoint, not an LSTM optimizer"):
        LearnedOptimizer(torch.nn.Linear(2, 1).parameters(), ZOO / "maml-sinusoid.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="truncated or not a safetensors file"):
        load_lstm_optimizer(tmp_path / "junk.safetensors")
    with pytest.raises(FileNotFoundError, match="zoo/l2o-quadratic.safetensors"):
        load_lstm_optimizer(tmp_path / "missing.safetensors")


def test_format_tag_matches_the_trainer_checkpoints():
    assert FORMAT == train_checkpoint.FORMAT
