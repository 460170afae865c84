"""Meta-LSTM: the cell update is a gated gradient step, the gates see the preprocessed gradient and loss,
every strategy gives the loop's meta-gradient, and the configs build."""
import copy
import threading
import warnings

import pytest
import torch
import torch.nn.functional as F

import learnfast as lf
from learnfast.algorithms import ALGORITHMS, MetaLSTM
from learnfast.algorithms.metalstm import MetaLearnerCell, meta_lstm_rule, silenced
from learnfast.functional import preprocess_gradient
from learnfast.train.build import build_algorithm
from learnfast.train.config import load_config
from conftest import blob_tasks

DT = torch.float64


def mlp(seed=0):
    torch.manual_seed(seed)
    return lf.MLP(in_features=8, hidden=(8,), out_features=3).double()


def test_preprocessing_values():
    x = torch.tensor([1.0, -2.0, 1e-6, 0.0], dtype=DT)
    out = preprocess_gradient(x)
    torch.testing.assert_close(out[0], torch.tensor([0.0, 1.0], dtype=DT))
    torch.testing.assert_close(out[1], torch.tensor([torch.log(torch.tensor(2.0, dtype=DT)) / 10, -1.0], dtype=DT))
    torch.testing.assert_close(out[2], torch.tensor([-1.0, 1e-6 * torch.exp(torch.tensor(10.0, dtype=DT))], dtype=DT))
    torch.testing.assert_close(out[3], torch.tensor([-1.0, 0.0], dtype=DT))


def test_with_constant_gates_the_update_is_decayed_sgd():
    """Gate weights 0: f = sigmoid(b_f), i = sigmoid(b_i) for every coordinate, so c_t = f c - i g."""
    model, task = mlp(), lf.task_at(blob_tasks(1, torch.Generator().manual_seed(0), dtype=DT), 0)
    cell = MetaLearnerCell(4).double()
    with torch.no_grad():
        for gate, bias in ((cell.forget_gate, 2.0), (cell.input_gate, -1.0)):
            gate.weight.zero_()
            gate.bias.fill_(bias)
    f, i = torch.sigmoid(torch.tensor(2.0, dtype=DT)), torch.sigmoid(torch.tensor(-1.0, dtype=DT))
    params = {k: v.detach() for k, v in lf.params_of(model).items()}
    got = lf.adapt(model, params, task.support_x, task.support_y, F.cross_entropy, 3,
                   meta_lstm_rule(cell, dict(cell.named_parameters())), memory="first-order")
    expected = dict(params)
    for _ in range(3):
        expected = {k: v.detach().requires_grad_() for k, v in expected.items()}
        loss = F.cross_entropy(lf.forward_with(model, expected, task.support_x), task.support_y)
        grads = dict(zip(expected, torch.autograd.grad(loss, list(expected.values()))))
        expected = {k: (f * v - i * grads[k]).detach() for k, v in expected.items()}
    for k in params:
        torch.testing.assert_close(got[k], expected[k], atol=1e-12, rtol=0)


def test_the_gates_read_the_gradient_and_the_loss():
    cell = MetaLearnerCell(4).double()
    rule = meta_lstm_rule(cell, dict(cell.named_parameters()))
    params = {"w": torch.ones(3, dtype=DT)}
    state = rule.init(params)
    a, _ = rule.update({"w": torch.tensor([1e-3, 1.0, 5.0], dtype=DT)}, state, params, 0, torch.tensor(1.0, dtype=DT))
    b, _ = rule.update({"w": torch.tensor([1e-3, 1.0, 5.0], dtype=DT)}, state, params, 0, torch.tensor(3.0, dtype=DT))
    assert not torch.equal(a["w"], b["w"])  # the loss enters the gates
    assert (a["w"] < 1).all()  # each step goes against the gradient


def test_initial_gates_keep_the_weights_and_take_a_small_step():
    cell = MetaLearnerCell()
    assert (torch.sigmoid(cell.forget_gate.bias) > 0.98).all() and (torch.sigmoid(cell.input_gate.bias) < 0.02).all()


@pytest.mark.parametrize("strategy", ["vmap", "threads"])
def test_strategies_equal_the_loop(strategy):
    tasks = blob_tasks(3, torch.Generator().manual_seed(1), dtype=DT)
    reference = MetaLSTM(mlp(), inner_steps=3, strategy="loop").double()
    other = copy.deepcopy(reference)
    other.strategy = strategy
    reference.meta_loss(tasks).loss.backward()
    other.meta_loss(tasks).loss.backward()
    for (name, p), q in zip(reference.named_parameters(), other.parameters()):
        assert p.grad.abs().max() > 0, name
        torch.testing.assert_close(q.grad, p.grad, atol=1e-10, rtol=1e-8)


def test_errors():
    with pytest.raises(ValueError, match="per-step"):
        MetaLSTM(mlp(), bn="per-step")
    with pytest.raises(ValueError, match="compiled cell under strategy='vmap'.*strategy='threads' or 'loop'"):
        MetaLSTM(mlp(), strategy="vmap", compile_cell=True)


def test_auto_never_puts_a_compiled_cell_under_vmap():
    batch = blob_tasks(2, torch.Generator().manual_seed(0), dtype=DT)
    on_gpu = lf.Task(*(t.to("meta") for t in (batch.support_x, batch.support_y, batch.query_x, batch.query_y)))
    assert MetaLSTM(mlp(), compile_cell=True).execution_strategy(on_gpu) == "loop"
    assert MetaLSTM(mlp()).execution_strategy(on_gpu) == "vmap"
    assert MetaLSTM(mlp(), compile_cell=True).execution_strategy(batch) == "threads"


@pytest.mark.parametrize("name, shots, steps", [("metalstm-omniglot-5w1s", 1, 12), ("metalstm-omniglot-5w5s", 5, 5)])
def test_registered_and_configs_build(name, shots, steps):
    assert ALGORITHMS["metalstm"] is MetaLSTM
    cfg = load_config(name)
    metalstm = build_algorithm(cfg)
    assert isinstance(metalstm, MetaLSTM) and metalstm.inner_steps == steps and cfg.train.shots == shots


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["loop", "threads"])
def test_compiled_cell_equals_eager(strategy):
    """``compile_cell`` changes how the cell runs, not what it computes: same loss and meta-gradient in float64."""
    tasks = blob_tasks(2, torch.Generator().manual_seed(2), dtype=DT)
    eager = MetaLSTM(mlp(), inner_steps=3, strategy=strategy).double()
    compiled = copy.deepcopy(eager)
    compiled.compile_cell = True
    a, b = eager.meta_loss(tasks).loss, compiled.meta_loss(tasks).loss
    a.backward()
    b.backward()
    torch.testing.assert_close(b, a, atol=1e-12, rtol=1e-10)
    for (name, p), q in zip(eager.named_parameters(), compiled.parameters()):
        assert p.grad.abs().max() > 0, name
        torch.testing.assert_close(q.grad, p.grad, atol=1e-10, rtol=1e-8)


def test_a_compiled_cell_without_a_compiler_is_a_clear_error(monkeypatch):
    from learnfast.algorithms.metalstm import compiled_cell_step
    monkeypatch.setenv("CXX", "no-such-compiler-xyz")
    compiled_cell_step.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="needs a C\\+\\+ compiler.*'no-such-compiler-xyz'.*compile_cell=false"):
            compiled_cell_step("cpu")
    finally:
        compiled_cell_step.cache_clear()


def test_a_restored_checkpoint_runs_its_cell_eagerly(tmp_path):
    """``compile_cell`` is how training ran: evaluating the checkpoint elsewhere must not need a compiler."""
    from learnfast.train.checkpoint import Checkpoint, save_checkpoint
    from learnfast.train.restore import restore
    cfg = load_config("metalstm-omniglot-5w1s")
    cfg.algorithm["compile_cell"] = True
    trained = build_algorithm(cfg)
    assert trained.compile_cell
    save_checkpoint(tmp_path / "m.safetensors", Checkpoint(trained.state_dict(), {"config": cfg.to_dict()}))
    restored = restore(tmp_path / "m.safetensors").algorithm
    assert isinstance(restored, MetaLSTM) and not restored.compile_cell
    assert all(torch.equal(v, restored.state_dict()[k]) for k, v in trained.state_dict().items())


def test_silencing_across_threads_restores_the_filters():
    """Two workers enter and leave out of order (A in, B in, A out, B out): the filters hold while
    either is inside and are the caller's own once both have left."""
    before = list(warnings.filters)
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    inside = []

    def worker(enter_after, entered, leave_after, name):
        if enter_after:
            enter_after.wait()
        with silenced():
            entered.set()
            leave_after.wait()
            inside.append((name, len(warnings.filters) - len(before)))

    a = threading.Thread(target=worker, args=(None, a_in, b_in, "a"))
    b = threading.Thread(target=worker, args=(a_in, b_in, a_out, "b"))
    a.start(), b.start()
    a.join()
    a_out.set()
    b.join()
    assert sorted(inside) == [("a", 2), ("b", 2)]
    assert warnings.filters == before
