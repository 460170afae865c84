"""The command line, run in-process: list, train, eval, and exit code 2 with a message on errors."""
import json

import pytest

from learnfast.algorithms import ALGORITHMS
from learnfast.cli import main
from learnfast.train.build import DATASETS
from learnfast.train.config import list_configs

TINY_SINE = [
    "--algorithm", "maml", "--dataset", "sinusoid", "--backbone", "mlp",
    "--shots", "5", "--queries", "5", "--meta-batch", "2", "--iterations", "3", "--lr", "0.01",
    "--val-every", "3", "--val-episodes", "3", "--checkpoint-every", "1", "--seed", "1",
    "--set", "model.hidden=8", "--set", "algorithm.inner_lr=0.01", "--set", "eval.shots=5", "--set", "eval.queries=7",
    "--no-progress",
]


def test_list_json(capsys):
    assert main(["list", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert {"algorithms", "datasets", "configs"} <= set(listing)
    assert set(listing["algorithms"]) == set(ALGORITHMS)
    assert set(listing["datasets"]) == set(DATASETS)
    assert listing["configs"] == list_configs()


def test_list_text(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "algorithms:" in out and "maml" in out and "protonet" in out


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli_run") / "sine"
    assert main(["train", *TINY_SINE, "--out", str(out)]) == 0
    return out


def test_train_then_eval_json(trained_run, capsys):
    assert {p.name for p in trained_run.iterdir()} >= {"best.safetensors", "last.safetensors", "metrics.jsonl"}
    ckpt = trained_run / "best.safetensors"
    assert main(["eval", str(ckpt), "--json", "--episodes", "20"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    report = json.loads(out[0])
    required = {"algorithm", "dataset", "split", "ways", "shots", "queries", "episodes", "metric", "mean", "ci95"}
    assert required <= set(report)
    assert report["algorithm"] == "maml" and report["dataset"] == "sinusoid" and report["metric"] == "mse"
    assert report["episodes"] == 20 and report["shots"] == 5 and report["queries"] == 7
    assert report["mean"] >= 0 and report["ci95"] > 0
    assert report["checkpoint"] == str(ckpt)


def test_train_prints_json_summary(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY_SINE, "--out", str(out), "--json"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    summary = json.loads(lines[0])
    assert summary["out"] == str(out) and summary["iteration"] == 3 and summary["best_iteration"] == 3


def test_train_prints_a_human_summary(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY_SINE, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "3 iterations" in text and "best validation mse" in text and "at iteration 3" in text
    assert str(out / "best.safetensors") in text and str(out / "last.safetensors") in text


def test_train_with_test_episodes(tmp_path, capsys):
    assert main(["train", *TINY_SINE, "--out", str(tmp_path / "run"), "--test-episodes", "5"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("test (sinusoid/") and "5 episodes" in lines[-1]
    assert main(["train", *TINY_SINE, "--out", str(tmp_path / "run"), "--test-episodes", "5", "--json", "--overwrite"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["iteration"] == 3 and report["test"]["episodes"] == 5


def test_train_resume_continues(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY_SINE, "--out", str(out)]) == 0
    assert main(["train", *TINY_SINE, "--out", str(out), "--iterations", "5", "--resume", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["iteration"] == 5


def test_eval_overrides_and_seed(trained_run, capsys):
    ckpt = str(trained_run / "best.safetensors")
    main(["eval", ckpt, "--json", "--episodes", "6", "--seed", "5", "--shots", "3"])
    a = json.loads(capsys.readouterr().out)
    main(["eval", ckpt, "--json", "--episodes", "6", "--seed", "5", "--shots", "3"])
    b = json.loads(capsys.readouterr().out)
    assert a["shots"] == 3 and a["seed"] == 5 and a["mean"] == b["mean"]


def test_eval_on_validation_classes_reproduces_training_validation(trained_run, capsys):
    from learnfast.train.checkpoint import load_checkpoint

    ckpt = trained_run / "best.safetensors"
    assert main(["eval", str(ckpt), "--json", "--part", "val", "--episodes", "3"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["part"] == "val" and report["episodes"] == 3
    assert report["mean"] == pytest.approx(load_checkpoint(ckpt).meta["val_score"], rel=1e-6)
    assert main(["eval", str(ckpt), "--json", "--episodes", "3"]) == 0
    test_report = json.loads(capsys.readouterr().out)
    assert test_report["part"] == "test" and test_report["mean"] != report["mean"]


def test_eval_on_validation_classes_refuses_test_only_extras(trained_run, capsys):
    assert main(["eval", str(trained_run / "best.safetensors"), "--part", "val", "--lake-runs"]) == 2
    assert "--lake-runs" in capsys.readouterr().err


def test_eval_text(trained_run, capsys):
    assert main(["eval", str(trained_run / "best.safetensors"), "--episodes", "4"]) == 0
    assert "mse" in capsys.readouterr().out


def test_eval_missing_checkpoint(tmp_path, capsys):
    missing = tmp_path / "nope.safetensors"
    assert main(["eval", str(missing), "--json"]) == 2
    captured = capsys.readouterr()
    assert "checkpoint not found" in captured.err and str(missing) in captured.err
    assert captured.out == ""


def test_eval_garbage_checkpoint(tmp_path, capsys):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 50)
    assert main(["eval", str(bad)]) == 2
    assert "learnfast eval: error:" in capsys.readouterr().err


@pytest.mark.parametrize("item", ["inner_lr=0.4", "algorithm.inner_lr", "nosection.key=1"])
def test_bad_set_syntax(tmp_path, capsys, item):
    assert main(["train", *TINY_SINE, "--out", str(tmp_path / "x"), "--set", item]) == 2
    err = capsys.readouterr().err
    assert "--set" in err and item in err
    assert not (tmp_path / "x").exists()  # failed before anything was written


def test_unknown_config_key_via_set(tmp_path, capsys):
    assert main(["train", *TINY_SINE, "--out", str(tmp_path / "x"), "--set", "train.wayz=5"]) == 2
    assert "wayz" in capsys.readouterr().err


def test_unknown_config_name(capsys):
    assert main(["train", "no-such-config", "--no-progress"]) == 2
    assert "no named config" in capsys.readouterr().err


def test_resume_without_checkpoint(tmp_path, capsys):
    assert main(["train", *TINY_SINE, "--out", str(tmp_path / "fresh"), "--resume"]) == 2
    assert "--resume" in capsys.readouterr().err


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["frobnicate"])
    assert info.value.code == 2
    capsys.readouterr()


def omniglot_root_or_skip():
    from conftest import omniglot_root

    root = omniglot_root()
    if not (root / "omniglot" / "images_evaluation.zip").is_file():
        pytest.skip("Omniglot data not found")
    return root


def saved_protonet(path, seed=0, **eval_settings):
    """A tiny untrained ProtoNet (Conv4 of 4 channels) saved as a learnfast checkpoint; returns the algorithm."""
    from learnfast.train.build import build_algorithm
    from learnfast.train.checkpoint import Checkpoint, save_checkpoint
    from learnfast.train.config import RunConfig

    cfg = RunConfig(name="p", algorithm={"name": "protonet"})
    cfg.model.hidden = 4
    for key, value in eval_settings.items():
        setattr(cfg.eval, key, value)
    algorithm = build_algorithm(cfg, seed=seed)
    save_checkpoint(path, Checkpoint(weights=algorithm.state_dict(), meta={"config": cfg.to_dict()}))
    return algorithm


def test_eval_inner_steps_on_protonet_checkpoint(tmp_path, capsys):
    root = omniglot_root_or_skip()  # a ProtoNet checkpoint needs Omniglot to evaluate
    ckpt = tmp_path / "p.safetensors"
    saved_protonet(ckpt, queries=2)
    code = main(["eval", str(ckpt), "--json", "--episodes", "2", "--inner-steps", "3", "--data-root", str(root)])
    assert code == 2
    assert "does not adapt by gradient steps" in capsys.readouterr().err


def test_precision_flag_reaches_the_run(tmp_path, capsys):
    out = tmp_path / "bf16"
    assert main(["train", *TINY_SINE, "--precision", "bf16", "--out", str(out)]) == 0
    from learnfast.train.checkpoint import load_checkpoint

    assert load_checkpoint(out / "last.safetensors").meta["config"]["train"]["precision"] == "bf16"


def test_unknown_precision_exits_2_naming_the_key(tmp_path, capsys):
    assert main(["train", *TINY_SINE, "--precision", "fp16", "--out", str(tmp_path / "x")]) == 2
    assert "precision" in capsys.readouterr().err


def test_train_from_a_frozen_init_then_eval(tmp_path, capsys):
    import torch

    from learnfast.train.checkpoint import load_checkpoint

    root = omniglot_root_or_skip()
    init = tmp_path / "features.safetensors"
    source = saved_protonet(init, seed=3)
    common = ["--dataset", "omniglot", "--backbone", "conv4", "--ways", "3", "--shots", "1", "--queries", "1",
              "--meta-batch", "2", "--iterations", "2", "--val-every", "2", "--val-episodes", "2",
              "--set", "model.hidden=4", "--set", f"model.init={json.dumps(str(init))}", "--set", "model.freeze=true",
              "--set", "eval.ways=3", "--set", "eval.queries=1", "--data-root", str(root), "--no-progress"]
    out = tmp_path / "siamese"
    assert main(["train", "--algorithm", "siamese", *common, "--out", str(out)]) == 0
    weights = load_checkpoint(out / "last.safetensors").weights
    for key, value in source.state_dict().items():  # the frozen backbone is the init's, untouched by training
        assert torch.equal(weights[key.replace("model.", "model.module.", 1)], value), key
    capsys.readouterr()
    assert main(["eval", str(out / "best.safetensors"), "--json", "--episodes", "2", "--data-root", str(root)]) == 0
    assert 0.0 <= json.loads(capsys.readouterr().out)["mean"] <= 1.0
    # a frozen ProtoNet has nothing left to meta-train
    assert main(["train", "--algorithm", "protonet", *common, "--out", str(tmp_path / "p")]) == 2
    assert "no parameters left to meta-train" in capsys.readouterr().err


def test_eval_json_shows_progress_on_stderr_only(trained_run):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "learnfast", "eval", str(trained_run / "best.safetensors"), "--json",
                             "--episodes", "30"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["episodes"] == 30  # stdout: exactly one JSON object
    assert "eval:" in result.stderr and "/30 [" in result.stderr  # the progress bar


def test_list_shows_every_zoo_checkpoint_with_its_headline(capsys):
    from conftest import REPO_ROOT

    assert main(["list", "--json", "--zoo", str(REPO_ROOT / "zoo")]) == 0
    zoo = json.loads(capsys.readouterr().out)["zoo"]
    assert set(zoo) == {p.name for p in (REPO_ROOT / "zoo").glob("*.safetensors")}
    assert all("(no headline" not in headline for headline in zoo.values())
    assert "99.06" in zoo["protonet-omniglot.safetensors"]
