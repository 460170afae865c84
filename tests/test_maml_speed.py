"""benchmarks/maml_speed.py: the float64 reference it checks against, and its error when a peer is missing."""
import argparse
import copy
import importlib.util
import sys
from pathlib import Path

import pytest
import torch

import learnfast as lf

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture
def maml_speed(monkeypatch):
    monkeypatch.setattr(sys, "path", [str(BENCHMARKS), *sys.path])  # restored after the test, with any stub path
    import maml_speed

    return maml_speed


def small_args(**overrides) -> argparse.Namespace:
    values = dict(seed=0, ways=3, shots=1, queries=2, tasks=2, steps=2, order=2, inner_lr=0.4, device="cpu")
    return argparse.Namespace(**{**values, **overrides})


@pytest.mark.parametrize("order", [1, 2])
def test_reference_gradient_is_learnfasts_loop(maml_speed, order):
    """The benchmark's own float64 loop and learnfast's reference loop agree: neither is checked against itself."""
    args = small_args(order=order)
    model, batch = maml_speed.build_problem(args)
    reference = maml_speed.reference_gradient(copy.deepcopy(model), batch, args)
    maml = lf.MAML(copy.deepcopy(model).double(), inner_lr=0.4, inner_steps=2, first_order=order == 1, strategy="loop")
    maml.meta_loss(batch.to(dtype=torch.float64)).loss.backward()
    assert max((p.grad - reference[k]).abs().max().item() for k, p in maml.model.named_parameters()) < 1e-10


@pytest.mark.skipif(importlib.util.find_spec("learn2learn") is not None, reason="learn2learn is installed here")
def test_missing_peer_says_how_to_install(maml_speed):
    with pytest.raises(SystemExit, match="pip install --no-deps learn2learn==0.2.0"):
        maml_speed.main(["--impls", "learnfast,learn2learn", "--tasks", "2"])


def test_unknown_learnfast_strategy_is_refused(maml_speed):
    with pytest.raises(SystemExit, match="learnfast strategies are"):
        maml_speed.main(["--impls", "learnfast:fast", "--tasks", "2"])


@pytest.mark.slow
def test_learnfast_rows_end_to_end(maml_speed, capsys):
    maml_speed.main(["--json", "--impls", "learnfast,learnfast:loop", "--tasks", "2", "--repeats", "1", "--queries", "2"])
    import json

    result = json.loads(capsys.readouterr().out)
    rows = result["implementations"]
    assert rows["learnfast"]["strategy"] == "threads"
    assert all(row["max_abs_grad_diff"] < 1e-4 and row["tasks_per_s"] > 0 for row in rows.values())
