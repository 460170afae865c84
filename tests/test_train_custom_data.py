"""`learnfast train CONFIG --data PATH`: meta-training on the user's own classes, with a seeded class split
saved in the run and used again by eval and --resume; clear errors for data that cannot make the split."""
import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from learnfast.cli import main
from learnfast.data.labelled import DataError
from learnfast.train.build import build_algorithm
from learnfast.train.config import ConfigError, load_config
from learnfast.train.user_data import SPLIT_SEED, assign_class_split, split_classes

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau upsilon".split()
TINY = ["--ways", "3", "--shots", "1", "--queries", "2", "--meta-batch", "2", "--iterations", "4", "--val-every", "2",
        "--val-episodes", "3", "--set", "eval.ways=3", "--set", "eval.queries=2", "--no-progress", "--threads", "1"]


def write_texts(path, classes=12, per_class=5):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for c in range(classes):
            for i in range(per_class):
                writer.writerow([f"{WORDS[c]} {WORDS[(c + 7) % 20]} request number {i}", f"intent{c:02d}"])
    return path


def test_split_rule_is_seeded_disjoint_and_sized():
    names = [f"c{i}" for i in range(30)]
    split = split_classes(names, train_ways=5, eval_ways=5, source="x")
    assert split == split_classes(list(reversed(names)), 5, 5, "x")  # the order of the files does not matter
    assert (len(split["train"]), len(split["val"]), len(split["test"])) == (18, 6, 6)  # 20 % each, the rest
    assert sorted(split["train"] + split["val"] + split["test"]) == sorted(names)
    order = [sorted(names)[i] for i in np.random.default_rng(SPLIT_SEED).permutation(30)]
    assert split["val"] == sorted(order[:6]) and split["test"] == sorted(order[6:12])
    assert len(split_classes(names[:12], 3, 3, "x")["val"]) == 3  # at least eval.ways classes


def test_too_few_classes_names_the_need_and_the_fixes():
    with pytest.raises(DataError, match=r"12 classes .* 20-way training and 5-way evaluation: that needs at least 30 classes"):
        split_classes([f"c{i}" for i in range(12)], train_ways=20, eval_ways=5, source="x")


def test_custom_keys_on_other_datasets_and_partial_lists_are_errors(tmp_path):
    cfg = load_config("protonet-clinc150-5w1s")
    cfg.data.path = "x.csv"
    with pytest.raises(ConfigError, match=r"\[data\] path: only read with dataset = \"custom\""):
        build_algorithm(cfg)
    cfg = load_config("protonet-clinc150-5w1s")
    cfg.data.dataset, cfg.data.split, cfg.data.path = "custom", "classes", str(write_texts(tmp_path / "t.csv"))
    cfg.data.train_classes = ["intent00"]
    with pytest.raises(ConfigError, match="give all three or none"):
        build_algorithm(cfg)
    cfg.data.val_classes, cfg.data.test_classes = ["intent00"], ["intent02"]
    cfg.train.ways = cfg.eval.ways = 1
    with pytest.raises(ConfigError, match="share"):
        assign_class_split(cfg)


def test_train_eval_resume_on_texts_from_the_command_line(tmp_path):
    """Subprocesses, as a user runs them: train --data, eval on the saved split, --resume after the data changed."""
    data = write_texts(tmp_path / "messages.csv")
    out = tmp_path / "run"
    cli = [sys.executable, "-m", "learnfast"]
    done = subprocess.run([*cli, "train", "protonet-clinc150-5w1s", "--data", str(data), *TINY, "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    split = json.loads((out / "classes.json").read_text())
    assert split["path"] == str(data.resolve())
    assert (len(split["train"]), len(split["val"]), len(split["test"])) == (6, 3, 3)
    assert set(split["train"]).isdisjoint(split["val"] + split["test"]) and set(split["val"]).isdisjoint(split["test"])

    done = subprocess.run([*cli, "eval", str(out / "best.safetensors"), "--episodes", "5", "--json", "--no-progress"],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path.parent)  # another folder: the path is absolute
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["dataset"] == "custom" and report["ways"] == 3 and 0 <= report["mean"] <= 1

    write_texts(data, classes=13)  # a class added: the seeded split changes, so the run cannot continue on it
    done = subprocess.run([*cli, "train", "protonet-clinc150-5w1s", "--data", str(data), *TINY, "--iterations", "6",
                           "--out", str(out), "--resume"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "classes changed" in done.stderr, done.stderr


def test_too_few_examples_per_class_is_named(tmp_path, capsys):
    data = write_texts(tmp_path / "few.csv", per_class=2)
    assert main(["train", "protonet-clinc150-5w1s", "--data", str(data), *TINY, "--queries", "3", "--out", str(tmp_path / "r")]) == 2
    assert "need 4 examples per class" in capsys.readouterr().err


def test_too_few_classes_from_the_cli(tmp_path, capsys):
    data = write_texts(tmp_path / "t.csv", classes=8)
    assert main(["train", "protonet-clinc150-5w1s", "--data", str(data), "--no-progress", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "8 classes cannot make disjoint" in err and "lower --ways" in err


def test_image_folders_and_npz(tmp_path, fresh_cache, capsys):
    root = tmp_path / "glyphs"
    rng = np.random.default_rng(0)
    for c in range(9):
        (root / f"g{c}").mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (20, 20), dtype=np.uint8)).save(root / f"g{c}" / f"{i}.png")
    out = tmp_path / "images"
    assert main(["train", "protonet-omniglot-5w1s", "--data", str(root), *TINY, "--out", str(out)]) == 0
    assert len(json.loads((out / "classes.json").read_text())["test"]) == 3
    assert main(["eval", str(out / "best.safetensors"), "--episodes", "3", "--no-progress"]) == 0

    np.savez(tmp_path / "arrays.npz", x=rng.normal(size=(27, 6)).astype(np.float32), y=np.repeat(np.arange(9), 3))
    assert main(["train", "--algorithm", "maml", "--backbone", "mlp", "--data", str(tmp_path / "arrays.npz"), *TINY,
                 "--set", "model.hidden=8", "--out", str(tmp_path / "arrays")]) == 0
    assert "test" in json.loads((tmp_path / "arrays" / "classes.json").read_text())
    capsys.readouterr()
    assert main(["train", "protonet-omniglot-5w1s", "--data", str(tmp_path / "nothing.txt"), *TINY, "--out", str(tmp_path / "x")]) == 2
    assert "not a folder of class sub-folders" in capsys.readouterr().err


def test_a_text_backbone_on_an_image_folder_is_refused(tmp_path, fresh_cache, capsys):
    root = tmp_path / "imgs"
    (root / "a").mkdir(parents=True)
    Image.new("L", (5, 5)).save(root / "a" / "0.png")
    assert main(["train", "protonet-clinc150-5w1s", "--data", str(root), "--out", str(tmp_path / "r"), "--no-progress"]) == 2
    assert "does not read" in capsys.readouterr().err
