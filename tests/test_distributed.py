"""Scale-out with torchrun (gloo on CPU): the meta-batch's tasks split across ranks give the one-process run,
rank 0 alone writes, a run resumes under another number of ranks, and evaluation shards its fixed episodes."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from learnfast.train.checkpoint import load_checkpoint

SINE = ["--algorithm", "maml", "--dataset", "sinusoid", "--backbone", "mlp", "--shots", "5", "--queries", "5",
        "--meta-batch", "4", "--lr", "0.01", "--val-every", "3", "--val-episodes", "6", "--checkpoint-every", "3",
        "--seed", "1", "--set", "model.hidden=8", "--set", "algorithm.inner_lr=0.01", "--set", "eval.episodes=7",
        "--no-progress", "--device", "cpu", "--threads", "1"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "learnfast"]


def run(command, timeout=300):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "learnfast", "train", *SINE, "--iterations", "6", "--out", str(root / "one")])
    run([*TORCHRUN, "train", *SINE, "--iterations", "6", "--out", str(root / "two")])
    return root


def test_two_ranks_train_what_one_process_trains(runs):
    one, two = load_checkpoint(runs / "one" / "last.safetensors"), load_checkpoint(runs / "two" / "last.safetensors")
    for k, v in one.weights.items():
        torch.testing.assert_close(two.weights[k], v, atol=1e-5, rtol=1e-4)
    log_one = [json.loads(line) for line in (runs / "one" / "metrics.jsonl").read_text().splitlines()]
    log_two = [json.loads(line) for line in (runs / "two" / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in log_two] == [r["iteration"] for r in log_one]  # one writer: no duplicate lines
    for a, b in zip(log_one, log_two):
        assert b["val_mse"] == pytest.approx(a["val_mse"], rel=1e-4)  # sharded validation = the same episodes


def test_two_ranks_give_the_one_process_meta_gradient_in_float64(tmp_path, monkeypatch):
    """Each gloo rank takes half of a fixed meta-batch; the all-reduced mean equals a plain float64 loop on all of it."""
    script = Path(__file__).with_name("dist_meta_gradient.py")
    run([*TORCHRUN[:-2], str(script), str(tmp_path / "two.pt")])
    two = torch.load(tmp_path / "two.pt", weights_only=True)
    monkeypatch.syspath_prepend(str(script.parent))
    from dist_meta_gradient import fixed_batch, model

    reference = model()  # second-order MAML by hand: 2 SGD steps of 0.05 with create_graph, query MSE, mean over tasks
    theta = list(reference.parameters())
    batch = fixed_batch()
    forward = lambda w, x: torch.func.functional_call(reference, dict(zip([k for k, _ in reference.named_parameters()], w)), (x,))
    total = 0
    for t in range(batch.batch_size):
        fast = theta
        for _ in range(2):
            grads = torch.autograd.grad(torch.nn.functional.mse_loss(forward(fast, batch.support_x[t]), batch.support_y[t]), fast, create_graph=True)
            fast = [w - 0.05 * g for w, g in zip(fast, grads)]
        total = total + torch.nn.functional.mse_loss(forward(fast, batch.query_x[t]), batch.query_y[t]) / batch.batch_size
    expected = torch.autograd.grad(total, theta)
    for a, b in zip(two, expected):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.slow
def test_resume_under_another_number_of_ranks(runs, tmp_path):
    shutil.copytree(runs / "two", tmp_path / "two")
    shutil.copytree(runs / "one", tmp_path / "one")
    run([sys.executable, "-m", "learnfast", "train", *SINE, "--iterations", "9", "--out", str(tmp_path / "two"), "--resume"])
    run([*TORCHRUN, "train", *SINE, "--iterations", "9", "--out", str(tmp_path / "one"), "--resume"])
    a, b = load_checkpoint(tmp_path / "two" / "last.safetensors"), load_checkpoint(tmp_path / "one" / "last.safetensors")
    assert a.meta["iteration"] == b.meta["iteration"] == 9
    for k, v in a.weights.items():
        torch.testing.assert_close(b.weights[k], v, atol=1e-5, rtol=1e-4)


@pytest.mark.slow
def test_sharded_evaluation_reports_once_with_the_one_process_figure(runs):
    ckpt = str(runs / "one" / "best.safetensors")
    one = json.loads(run([sys.executable, "-m", "learnfast", "eval", ckpt, "--json", "--episodes", "9", "--no-progress"]).stdout)
    two = run([*TORCHRUN, "eval", ckpt, "--json", "--episodes", "9", "--no-progress"]).stdout.strip().splitlines()
    assert len(two) == 1  # rank 0 reports
    report = json.loads(two[0])
    assert report["episodes"] == 9 and report["mean"] == pytest.approx(one["mean"], rel=1e-6)


@pytest.mark.slow
def test_a_meta_batch_the_ranks_cannot_split_is_an_error(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([*TORCHRUN, "train", *SINE, "--meta-batch", "3", "--iterations", "2", "--out", str(tmp_path / "r")],
                            capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode != 0 and "cannot be split across 2 processes" in result.stderr
