"""`learnfast predict` end to end on tiny files made here: an image checkpoint on a class-folder tree, a text
checkpoint on a CSV, the JSON and CSV outputs, and the errors a user meets."""
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from learnfast.cli import main
from learnfast.train.build import build_algorithm
from learnfast.train.checkpoint import Checkpoint, save_checkpoint
from learnfast.train.config import RunConfig, load_config

REPO = Path(__file__).resolve().parents[1]


def checkpoint(path, cfg):
    save_checkpoint(path, Checkpoint(weights=build_algorithm(cfg, seed=0).state_dict(), meta={"config": cfg.to_dict()}))
    return path


def image_checkpoint(path, algorithm="protonet"):
    cfg = RunConfig(name="tiny", algorithm={"name": algorithm})
    cfg.model.hidden = 4
    if algorithm == "maml":
        cfg.model.backbone = "conv4-strided"
    return checkpoint(path, cfg)


def strokes(seed):
    """A 28x28 white page with a few dark strokes, unlike any other seed's."""
    rng = np.random.default_rng(seed)
    page = np.full((28, 28), 255, dtype=np.uint8)
    for _ in range(3):
        r, c = rng.integers(2, 24, size=2)
        page[r:r + 3, c:c + 10] = 0
    return Image.fromarray(page)


@pytest.fixture
def image_files(tmp_path, fresh_cache):
    for c in range(3):
        for j in range(2):
            (tmp_path / "support" / f"glyph{c}").mkdir(parents=True, exist_ok=True)
            strokes(10 * c).save(tmp_path / "support" / f"glyph{c}" / f"{j}.png")
    (tmp_path / "query").mkdir()
    for c in range(3):
        strokes(10 * c).save(tmp_path / "query" / f"q{c}.png")
    return tmp_path


def test_predict_images_json_and_csv(image_files, capsys):
    ckpt = image_checkpoint(image_files / "p.safetensors")
    args = ["predict", str(ckpt), "--support", str(image_files / "support"), "--query", str(image_files / "query"), "--invert"]
    assert main([*args, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["query"] for r in rows] == ["q0.png", "q1.png", "q2.png"]
    assert [r["label"] for r in rows] == ["glyph0", "glyph1", "glyph2"]  # each query is its own class's image
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-5 and r["probability"] == max(r["probabilities"].values()) for r in rows)
    assert main([*args, "--csv", str(image_files / "out.csv")]) == 0
    with open(image_files / "out.csv", encoding="utf-8") as f:
        table = list(csv.reader(f))
    assert table[0] == ["query", "label", "probability", "glyph0", "glyph1", "glyph2"] and len(table) == 4


def test_predict_texts(tmp_path, capsys):
    cfg = load_config("protonet-clinc150-5w1s")
    ckpt = checkpoint(tmp_path / "t.safetensors", cfg)
    (tmp_path / "support.csv").write_text("text,label\nwhere is my parcel,track\nhas my parcel shipped,track\n"
                                          "i want my money back,refund\nrefund my order please,refund\n", encoding="utf-8")
    (tmp_path / "queries.txt").write_text("where is my parcel today\n\nmy money back please\n", encoding="utf-8")
    assert main(["predict", str(ckpt), "--support", str(tmp_path / "support.csv"), "--query", str(tmp_path / "queries.txt")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split("\t")[:2] for line in lines] == [["where is my parcel today", "track"], ["my money back please", "refund"]]


def test_a_fixed_head_needs_its_number_of_classes(image_files):
    ckpt = image_checkpoint(image_files / "m.safetensors", algorithm="maml")  # a 5-way head, 3 classes given
    result = subprocess.run([sys.executable, "-m", "learnfast", "predict", str(ckpt), "--support", str(image_files / "support"),
                             "--query", str(image_files / "query")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "has an output layer of 5 classes; the support set has 3" in result.stderr


def test_wrong_kinds_of_input_are_named(image_files, capsys):
    ckpt = image_checkpoint(image_files / "p.safetensors")
    assert main(["predict", str(ckpt), "--support", str(image_files / "x.csv"), "--query", str(image_files / "query")]) == 2
    assert "takes a folder of class sub-folders of images" in capsys.readouterr().err
    (image_files / "empty").mkdir()
    assert main(["predict", str(ckpt), "--support", str(image_files / "support"), "--query", str(image_files / "empty")]) == 2
    assert "no images" in capsys.readouterr().err


def test_readme_predict_example_labels_every_glyph_and_text(data_root, tmp_path, capsys):
    """The README's walk-through: docs/make_predict_example.py, then predict with two zoo checkpoints."""
    if not (data_root / "text" / "clinc150" / "data_full.json").is_file():
        pytest.skip("CLINC150 not found under LEARNFAST_DATA")
    env = {**os.environ, "LEARNFAST_DATA": str(data_root)}
    script = REPO / "docs" / "make_predict_example.py"
    subprocess.run([sys.executable, str(script), str(tmp_path / "ex")], check=True, env=env, capture_output=True)
    glyphs, text = tmp_path / "ex" / "glyphs", tmp_path / "ex" / "text"
    assert main(["predict", str(REPO / "zoo" / "protonet-omniglot.safetensors"), "--support", str(glyphs / "support"),
                 "--query", str(glyphs / "query"), "--invert", "--json"]) == 0
    predictions = json.loads(capsys.readouterr().out)
    assert len(predictions) == 5 and all(p["label"] == p["query"].removesuffix(".png") for p in predictions)
    assert main(["predict", str(REPO / "zoo" / "protonet-clinc150.safetensors"), "--support", str(text / "support.csv"),
                 "--query", str(text / "queries.txt"), "--json"]) == 0
    labels = [p["label"] for p in json.loads(capsys.readouterr().out)]
    assert labels == ["translate", "weather", "balance", "alarm", "flight_status"]
