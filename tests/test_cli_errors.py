"""Bad arguments, bad values and bad checkpoints end in one `error:` line naming the fix, never a traceback;
names read from a checkpoint reach the terminal escaped."""
import json
import subprocess
import sys

import pytest
from safetensors.torch import save_file

from learnfast.cli import main, printable
from learnfast.train.build import build_algorithm
from learnfast.train.checkpoint import FORMAT, Checkpoint, save_checkpoint
from learnfast.train.config import RunConfig

SINE = ["--algorithm", "maml", "--dataset", "sinusoid", "--backbone", "mlp", "--shots", "5", "--queries", "5",
        "--meta-batch", "2", "--iterations", "2", "--val-episodes", "2", "--set", "model.hidden=8", "--no-progress"]


def sine_checkpoint(path, name="sine", weights=None, meta=None):
    cfg = RunConfig(name=name, algorithm={"name": "maml", "inner_lr": 0.01})
    cfg.data.dataset, cfg.model.backbone, cfg.model.hidden = "sinusoid", "mlp", 8
    cfg.eval.shots, cfg.eval.queries, cfg.eval.episodes = 5, 5, 3
    algorithm = build_algorithm(cfg)
    state = algorithm.state_dict() if weights is None else weights(algorithm.state_dict())
    save_checkpoint(path, Checkpoint(weights=state, meta={"config": cfg.to_dict()} if meta is None else meta))
    return path


@pytest.mark.parametrize("args, message", [
    (["--val-every", "0"], "val_every = 0 must be >= 1"),
    (["--meta-batch", "0"], "meta_batch = 0 must be >= 1"),
    (["--checkpoint-every", "-1"], "checkpoint_every = -1 must be >= 1"),
    (["--set", "model.hidden=0"], "hidden = 0 must be >= 1"),
    (["--set", "algorithm.inner_steps=1.5"], "[algorithm] inner_steps = 1.5 should be of type int"),
    (["--set", "algorithm.inner_steps=-1"], "[algorithm] inner_steps = -1 must be >= 0"),
    (["--set", "algorithm.inner_lr=nan"], "[algorithm] inner_lr = nan must be a finite number"),
    (["--set", "train.lr=-1"], "lr = -1 must be > 0"),
])
def test_out_of_range_train_values_name_the_key(tmp_path, capsys, args, message):
    assert main(["train", *SINE, *args, "--out", str(tmp_path / "run")]) == 2
    assert message in capsys.readouterr().err


def test_out_naming_a_file(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert main(["train", *SINE, "--out", str(tmp_path / "file")]) == 2
    assert "is a file, not a run folder" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--episodes", "0"], "--episodes: 0 must be >= 1"),
    (["--inner-steps", "-1"], "--inner-steps: -1 must be >= 0"),
    (["--ways", "0"], "--ways: 0 must be >= 1"),
])
def test_out_of_range_eval_flags_are_usage_errors(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as info:
        main(["eval", str(sine_checkpoint(tmp_path / "c.safetensors")), *args])
    assert info.value.code == 2 and message in capsys.readouterr().err


def drop_first(state):
    return dict(list(state.items())[1:])


def reshape_first(state):
    key = next(iter(state))
    return {**state, key: state[key].flatten()[:-1]}


@pytest.mark.parametrize("weights, message", [(drop_first, "missing ['model.net.0.weight']"),
                                              (reshape_first, "different shapes ['model.net.0.weight']")])
def test_checkpoint_whose_tensors_do_not_fit(tmp_path, capsys, weights, message):
    path = sine_checkpoint(tmp_path / "c.safetensors", weights=weights)
    assert main(["eval", str(path)]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and message in err and "does not fit the model" in err


def raw_checkpoint(path, meta_json):
    save_file({"weights/x": __import__("torch").zeros(1)}, str(path), metadata={"format": FORMAT, "meta": meta_json, "optimizer": "null"})
    return path


@pytest.mark.parametrize("meta_json, message", [
    ("{}", "holds no run config"),
    ('{"config": 3}', "holds no run config"),
    ("[" * 100000 + "]" * 100000, "not valid learnfast JSON"),
    ("{not json", "not valid learnfast JSON"),
])
def test_checkpoint_metadata_errors(tmp_path, capsys, meta_json, message):
    assert main(["eval", str(raw_checkpoint(tmp_path / "c.safetensors", meta_json))]) == 2
    assert message in capsys.readouterr().err


def test_names_from_a_checkpoint_are_printed_escaped(tmp_path, capsys):
    hostile = "sine\x1b[31mRED\u202egnp.exe"
    path = sine_checkpoint(tmp_path / "c.safetensors", name=hostile)
    assert main(["eval", str(path), "--episodes", "2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\u202e" not in out
    assert "sine\\x1b[31mRED\\u202egnp.exe" in out
    assert main(["eval", str(path), "--episodes", "2", "--json", "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["algorithm"] == "maml"


def test_printable_keeps_ordinary_text():
    assert printable("Ωmniglot 5-way ± 0.2 %\n") == "Ωmniglot 5-way ± 0.2 %\n"
    assert printable("a\x07b\u200fc") == "a\\x07b\\u200fc"


def test_errors_reach_the_user_without_a_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "learnfast", "train", *SINE, "--val-every", "0", "--out", str(tmp_path / "r")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == ["learnfast train: error: [train]: val_every = 0 must be >= 1"]
