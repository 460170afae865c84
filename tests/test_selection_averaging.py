"""Weight averaging of one run's snapshots: the mean, the tail, the greedy soup, the trainer's snapshots and `learnfast average`."""
import json
import subprocess
import sys

import pytest
import torch

from learnfast.cli import main
from learnfast.selection.averaging import average_states, greedy_soup, snapshot_paths, tail_average
from learnfast.train.checkpoint import load_checkpoint
from learnfast.train.trainer import Trainer
from test_trainer import sinusoid_cfg


def state(value: float, steps: int = 7) -> dict:
    return {"w": torch.full((2, 3), value), "b": torch.tensor([value, -value], dtype=torch.float64),
            "half": torch.full((4,), value, dtype=torch.float16), "bn.num_batches_tracked": torch.tensor(steps)}


def test_average_of_identical_states_is_the_state():
    torch.manual_seed(0)
    one = {"w": torch.randn(5, 4), "b": torch.randn(4, dtype=torch.float64), "bn.num_batches_tracked": torch.tensor(3)}
    averaged = average_states([one, {k: v.clone() for k, v in one.items()}, {k: v.clone() for k, v in one.items()}])
    for key, value in one.items():
        assert averaged[key].dtype == value.dtype and torch.equal(averaged[key], value), key


def test_uniform_average_is_the_hand_computed_mean():
    states = [state(1.0, 1), state(2.0, 2), state(4.0, 3), state(9.0, 4)]
    tail = tail_average(states, 3)  # (2 + 4 + 9) / 3 = 5
    assert torch.equal(tail["w"], torch.full((2, 3), 5.0))
    assert torch.equal(tail["b"], torch.tensor([5.0, -5.0], dtype=torch.float64))
    assert tail["half"].dtype == torch.float16 and torch.equal(tail["half"], torch.full((4,), 5.0, dtype=torch.float16))
    assert int(tail["bn.num_batches_tracked"]) == 4  # an integer buffer is the newest snapshot's, not a mean
    assert torch.equal(average_states(states)["w"], torch.full((2, 3), 4.0))  # (1 + 2 + 4 + 9) / 4
    with pytest.raises(ValueError, match="choose 1..4"):
        tail_average(states, 5)
    with pytest.raises(ValueError, match="other keys"):
        average_states([state(1.0), {"w": torch.zeros(2, 3)}])
    with pytest.raises(ValueError, match="shape"):
        average_states([state(1.0), {**state(1.0), "w": torch.zeros(3, 2)}])


def test_greedy_soup_never_accepts_a_state_that_lowers_validation():
    target = torch.tensor([1.0, -2.0, 0.5])

    def score(s):  # higher is better: closeness to a target the soup cannot see
        return -float((s["w"] - target).pow(2).sum())

    generator = torch.Generator().manual_seed(0)
    for trial in range(20):
        states = [{"w": target + torch.randn(3, generator=generator) * (0.2 + 2.0 * (i % 3 == 0))} for i in range(8)]
        soup = greedy_soup(states, score)
        assert soup.kept[0] == max(range(8), key=lambda i: soup.scores[i])  # the best single state comes first
        best = soup.scores[soup.kept[0]]
        for index, candidate, accepted in soup.trials:
            assert accepted == (candidate >= best)  # kept exactly when validation does not drop
            best = max(best, candidate) if accepted else best
        assert soup.soup_score == pytest.approx(score(soup.state)) and soup.soup_score >= max(soup.scores)
        assert {i for i, _, accepted in soup.trials if not accepted}.isdisjoint(soup.kept)
    far = [{"w": target.clone()}, {"w": target + 100.0}]  # averaging in the far state would lower the score
    assert greedy_soup(far, score).kept == (0,)


def test_trainer_keeps_snapshots_and_average_cli(tmp_path, capsys):
    run = tmp_path / "run"
    Trainer(sinusoid_cfg(iterations=12, keep_every=4), run, progress=False).fit()
    paths = snapshot_paths(run)
    assert [p.name for p in paths] == ["0000004.safetensors", "0000008.safetensors", "0000012.safetensors"]
    last = load_checkpoint(run / "last.safetensors").weights
    assert all(torch.equal(load_checkpoint(paths[-1]).weights[k], v) for k, v in last.items())  # the newest snapshot = last

    assert main(["average", str(run), "--tail", "2", "--json", "--test-episodes", "3"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["kept"] == [8, 12] and report["metric"] == "mse" and len(report["test_difference"]) == 2
    written = load_checkpoint(tmp_path / "run" / "average-tail2.safetensors")
    expected = average_states([load_checkpoint(p).weights for p in paths[1:]])
    assert all(torch.equal(written.weights[k], v) for k, v in expected.items())
    assert written.meta["averaged"]["iterations"] == [8, 12] and "config" in written.meta
    assert main(["average", str(run), "--soup", "--out", str(tmp_path / "soup.safetensors"), "--json"]) == 0
    soup = json.loads(capsys.readouterr().out)
    assert soup["kept"] and soup["val_average"][0] <= soup["val_newest"][0] + 1e-12  # mse: no worse than any snapshot, the newest too
    assert main(["average", str(run), "--tail", "9"]) == 2
    assert "has 3 snapshots" in capsys.readouterr().err
    assert main(["average", str(run), "--tail", "1", "--ways", "5"]) == 2  # would be ignored: validation keeps the run's shape
    assert "add --test-episodes" in capsys.readouterr().err


def test_average_without_snapshots_names_the_option(tmp_path):
    (tmp_path / "snapshots").mkdir()
    done = subprocess.run([sys.executable, "-m", "learnfast", "average", str(tmp_path), "--soup"], capture_output=True, text=True)
    assert done.returncode == 2
    assert "keep_every" in done.stderr and "Traceback" not in done.stderr
