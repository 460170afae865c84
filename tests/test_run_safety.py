"""Run folders as a user meets them, through the real `learnfast` command in a subprocess: an existing
run is never overwritten or mixed, one writer at a time, Ctrl-C / SIGTERM save where they stopped,
and a diverging run keeps its last finite checkpoint."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from learnfast.train.checkpoint import load_checkpoint

SINE = [
    "--algorithm", "maml", "--dataset", "sinusoid", "--backbone", "mlp", "--shots", "5", "--queries", "5",
    "--meta-batch", "2", "--lr", "0.01", "--val-episodes", "3", "--seed", "1",
    "--set", "model.hidden=8", "--set", "algorithm.inner_lr=0.01", "--set", "eval.episodes=3", "--no-progress",
]


def learnfast(*args: str, **popen) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "learnfast", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, **popen)


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    p = learnfast(*args)
    out, err = p.communicate(timeout=timeout)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def wait_for_iteration(log: Path, at_least: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if log.is_file():
            lines = log.read_text().splitlines()
            if lines and json.loads(lines[-1])["iteration"] >= at_least:
                return
        time.sleep(0.05)
    raise AssertionError(f"{log} never reached iteration {at_least}")


def long_run(out: Path) -> subprocess.Popen:
    """A run that would take minutes: validation and checkpoints only at its (far) end."""
    return learnfast("train", *SINE, "--iterations", "1000000", "--val-every", "1000000", "--checkpoint-every", "1000000",
                     "--out", str(out))


def test_existing_run_folder_needs_resume_or_overwrite(tmp_path):
    out = tmp_path / "run"
    assert run("train", *SINE, "--iterations", "3", "--val-every", "3", "--out", str(out)).returncode == 0
    best = load_checkpoint(out / "best.safetensors")
    again = run("train", *SINE, "--iterations", "3", "--val-every", "3", "--out", str(out))
    assert again.returncode == 2 and "Traceback" not in again.stderr
    assert "already holds a run" in again.stderr and "--resume" in again.stderr and "--overwrite" in again.stderr
    assert torch.equal(load_checkpoint(out / "best.safetensors").weights["model.net.0.weight"], best.weights["model.net.0.weight"])
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1  # nothing appended

    fresh = run("train", *SINE, "--iterations", "2", "--val-every", "2", "--out", str(out), "--overwrite", "--set", "train.seed=5")
    assert fresh.returncode == 0, fresh.stderr
    assert [json.loads(line)["iteration"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [2]
    assert load_checkpoint(out / "last.safetensors").meta["iteration"] == 2


def test_a_second_writer_fails_at_once_naming_the_holder(tmp_path):
    out = tmp_path / "run"
    first = long_run(out)
    try:
        wait_for_iteration(out / "metrics.jsonl", 10, first)
        started = time.monotonic()
        second = run("train", *SINE, "--iterations", "3", "--out", str(out), "--resume")
        assert second.returncode == 2 and f"in use by another run (pid {first.pid})" in second.stderr
        assert time.monotonic() - started < 30
        assert first.poll() is None  # the first run goes on
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=60)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_saves_the_current_iteration_then_resume_finishes(tmp_path, signum):
    out = tmp_path / "run"
    proc = long_run(out)
    wait_for_iteration(out / "metrics.jsonl", 10, proc)
    assert not (out / "last.safetensors").exists()  # no periodic checkpoint before the signal
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, err
    saved = load_checkpoint(out / "last.safetensors").meta["iteration"]
    assert saved >= 10 and f"holds iteration {saved}; resume from it with the same command plus --resume" in err
    assert "Traceback" not in err
    resumed = run("train", *SINE, "--iterations", str(saved + 3), "--val-every", "1000000", "--checkpoint-every", "1000000",
                  "--out", str(out), "--resume", "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout.strip().splitlines()[-1])["iteration"] == saved + 3


def test_divergence_keeps_the_last_finite_checkpoint(tmp_path):
    out = tmp_path / "run"
    result = run("train", *SINE, "--iterations", "20", "--val-every", "100", "--checkpoint-every", "1", "--set", "train.lr=1e30",
                 "--out", str(out))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    ckpt = load_checkpoint(out / "last.safetensors")
    assert all(torch.isfinite(v).all() for v in ckpt.weights.values())
    assert f"keeps iteration {ckpt.meta['iteration']}, the last with finite weights" in result.stderr


def test_an_infinite_rate_is_refused_before_training(tmp_path):
    result = run("train", *SINE, "--iterations", "3", "--set", "train.lr=inf", "--out", str(tmp_path / "run"))
    assert result.returncode == 2 and "lr = inf must be a finite number" in result.stderr
    assert not (tmp_path / "run").exists()


def test_a_run_that_ends_near_chance_warns(tmp_path, data_root):
    result = run("train", "protonet-omniglot-5w1s", "--iterations", "30", "--val-every", "30", "--val-episodes", "20",
                 "--set", "model.hidden=1", "--set", "train.lr=1e6", "--meta-batch", "1", "--data-root", str(data_root),
                 "--no-progress", "--out", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    assert "warning:" in result.stderr and "near chance (20.0 % at 5 ways): the run did not learn" in result.stderr
