"""`learnfast report`: the curves and the HTML page of a run folder, with the validation CI the trainer logs."""
import json

import pytest

from learnfast.cli import main

SINE = ["--algorithm", "maml", "--dataset", "sinusoid", "--backbone", "mlp", "--shots", "5", "--queries", "5",
        "--meta-batch", "2", "--iterations", "6", "--val-every", "2", "--val-episodes", "4", "--set", "model.hidden=8",
        "--set", "eval.episodes=5", "--no-progress"]


def test_report_writes_curves_and_a_page(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", *SINE, "--out", str(run)]) == 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(r["val_ci95"] > 0 for r in records if "val_mse" in r)  # the trainer logs the validation CI
    assert main(["report", str(run), "--out", str(tmp_path / "rep"), "--test-episodes", "5", "--no-progress"]) == 0
    assert "report.html" in capsys.readouterr().out
    files = {p.name for p in (tmp_path / "rep").iterdir()}
    assert {"loss.png", "lr.png", "validation.png", "report.html"} <= files
    page = (tmp_path / "rep" / "report.html").read_text()
    assert "data:image/png;base64," in page and "&quot;dataset&quot;: &quot;sinusoid&quot;" in page and "test" in page


def test_report_of_a_folder_without_a_run(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "metrics.jsonl not found" in capsys.readouterr().err


def test_episode_grid_for_images(tmp_path, data_root, capsys):
    from learnfast.train.build import build_algorithm
    from learnfast.train.checkpoint import Checkpoint, save_checkpoint
    from learnfast.train.config import RunConfig

    cfg = RunConfig(name="p", algorithm={"name": "protonet"})
    cfg.model.hidden, cfg.eval.queries = 4, 2
    run = tmp_path / "run"
    run.mkdir()
    save_checkpoint(run / "best.safetensors", Checkpoint(weights=build_algorithm(cfg).state_dict(),
                                                         meta={"config": cfg.to_dict(), "metric": "accuracy"}))
    (run / "metrics.jsonl").write_text(json.dumps({"iteration": 10, "loss": 1.0, "lr": 1e-3, "accuracy": 0.5,
                                                   "val_accuracy": 0.5, "val_ci95": 0.05}) + "\n")
    assert main(["report", str(run), "--episode-grid", "2", "--data-root", str(data_root), "--no-progress"]) == 0
    assert (run / "episodes.png").is_file() and "episodes" in (run / "report.html").read_text()
