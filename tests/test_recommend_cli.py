"""`learnfast train / eval / predict` of MeLU on a synthetic MovieLens-layout folder, as a user runs them."""
import json
import subprocess
import sys

import pytest

from learnfast.cli import main
from synthetic_ratings import write_movielens

TINY = ["--iterations", "2", "--shots", "2", "--queries", "3", "--meta-batch", "4", "--val-every", "2", "--val-episodes", "4",
        "--checkpoint-every", "1", "--set", "eval.shots=2", "--set", "eval.queries=3", "--set", "eval.episodes=5", "--no-progress"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("ratings")
    write_movielens(root)
    out = root / "run"
    assert main(["train", "melu-ml100k", "--data-root", str(root), "--out", str(out), *TINY]) == 0
    return root, out / "best.safetensors"


def cli(*args):
    return subprocess.run([sys.executable, "-m", "learnfast", *map(str, args)], capture_output=True, text=True, timeout=300)


@pytest.mark.slow  # fits every baseline, the global network included (about 15 s of CPU)
def test_eval_json_reports_every_scenario_for_melu_and_the_baselines(trained):
    root, checkpoint = trained
    result = cli("eval", checkpoint, "--json", "--no-progress", "--data-root", root)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["algorithm"] == "melu" and report["metric"] == "mse" and report["shots"] == 2
    scenarios = report["cold_start"]
    assert set(scenarios) == {"warm", "new-items", "new-users", "new-users-new-items"}
    methods = scenarios["new-users"]["methods"]
    assert {"this model", "global mean", "item mean", "user mean (support)", "popularity", "global network",
            "global + fine-tune", "MF fold-in"} == set(methods)
    for name, m in methods.items():
        assert 0 < m["ndcg@3"] <= 1, name
        assert (m["mae"] is None) == (name == "popularity"), name  # a ranking has no rating error (null in JSON)
        assert name == "popularity" or 0 <= m["mae"] <= m["rmse"]


def test_predict_ranks_the_unrated_items_of_a_new_user(trained, tmp_path):
    root, checkpoint = trained
    (tmp_path / "mine.csv").write_text("item,rating\n1,5\n2,1\n3,4\n")
    result = cli("predict", checkpoint, "--support", tmp_path / "mine.csv", "--top", 5, "--user", "gender=F",
                 "--user", "occupation=writer", "--json", "--data-root", root)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5]
    assert not {r["item"] for r in rows} & {"1", "2", "3"}
    scores = [r["predicted_rating"] for r in rows]
    assert scores == sorted(scores, reverse=True)


def test_predict_errors_name_the_file_line_and_flag(trained, tmp_path, capsys):
    root, checkpoint = trained
    (tmp_path / "bad.csv").write_text("item,rating\n1,5\n9999,3\n")
    assert main(["predict", str(checkpoint), "--support", str(tmp_path / "bad.csv"), "--data-root", str(root)]) == 2
    assert "bad.csv, line 3: item '9999' is not in" in capsys.readouterr().err
    (tmp_path / "mine.csv").write_text("item,rating\n1,five\n")
    assert main(["predict", str(checkpoint), "--support", str(tmp_path / "mine.csv"), "--data-root", str(root)]) == 2
    assert "mine.csv, line 2: rating 'five' is not a number" in capsys.readouterr().err
    assert main(["predict", str(checkpoint), "--support", str(tmp_path / "mine.csv"), "--user", "gender"]) == 2
    assert "--user 'gender': write KEY=VALUE" in capsys.readouterr().err


def test_config_mistakes_are_errors_naming_the_key(trained, capsys):
    root, _ = trained
    assert main(["train", "melu-ml100k", "--data-root", str(root), "--split", "cold", "--out", str(root / "x"), *TINY]) == 2
    assert "[data] split = 'cold'" in capsys.readouterr().err
    assert main(["train", "melu-ml100k", "--backbone", "mlp", "--out", str(root / "y"), *TINY]) == 2
    assert "backbone = 'mlp' does not fit dataset 'movielens-100k'" in capsys.readouterr().err
