"""Task embeddings on Omniglot: `eval --alphabet-distances`, and on the shipped TADAM, tasks of one
alphabet lie closer together than tasks of different alphabets."""
import json
from pathlib import Path

import pytest
import torch
from conftest import omniglot_root

from learnfast.cli import main
from learnfast.data.alphabets import alphabet_distances, alphabet_samplers
from learnfast.data.omniglot import omniglot_split
from learnfast.episodes import EpisodeSpec
from learnfast.train.build import build_algorithm, to_float_image
from learnfast.train.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from learnfast.train.config import RunConfig

ROOT = omniglot_root()
ZOO_TADAM = Path(__file__).resolve().parents[1] / "zoo" / "tadam-omniglot.safetensors"
needs_omniglot = pytest.mark.skipif(not (ROOT / "omniglot" / "images_evaluation.zip").is_file(), reason="Omniglot data not found")


def tiny_checkpoint(tmp_path, name: str) -> Path:
    cfg = RunConfig(name=name, algorithm={"name": name})
    cfg.model.hidden = 4
    cfg.data.split = "lake"
    algorithm = build_algorithm(cfg)
    path = tmp_path / f"{name}.safetensors"
    save_checkpoint(path, Checkpoint(weights=algorithm.state_dict(), meta={"config": cfg.to_dict()}))
    return path


@needs_omniglot
def test_eval_reports_alphabet_distances(tmp_path, capsys):
    ckpt = tiny_checkpoint(tmp_path, "tadam")
    args = ["eval", str(ckpt), "--json", "--episodes", "2", "--ways", "5", "--queries", "1", "--alphabet-distances", "3", "--data-root", str(ROOT)]
    assert main(args) == 0
    d = json.loads(capsys.readouterr().out)["alphabet_distances"]
    alphabets = d["alphabets"]
    assert alphabets == 20  # every evaluation alphabet of Lake's split has >= 5 characters
    assert d["episodes_per_alphabet"] == 3
    assert d["same_pairs"] == alphabets * 3 and d["different_pairs"] == alphabets * (alphabets - 1) // 2 * 9
    assert d["same"] > 0 and d["different"] > 0 and d["ratio"] == pytest.approx(d["same"] / d["different"])


@needs_omniglot
def test_alphabet_distances_need_a_task_embedding(tmp_path, capsys):
    ckpt = tiny_checkpoint(tmp_path, "protonet")
    assert main(["eval", str(ckpt), "--episodes", "1", "--alphabet-distances", "3", "--data-root", str(ROOT)]) == 2
    assert "protonet has no task embedding (embed_task)" in capsys.readouterr().err


@needs_omniglot
@pytest.mark.skipif(not ZOO_TADAM.is_file(), reason="zoo/tadam-omniglot.safetensors not shipped")
def test_trained_tadam_puts_same_alphabet_tasks_closer():
    """The shipped TADAM, never trained on these characters: same-alphabet 5-way tasks are nearer each other."""
    ckpt = load_checkpoint(ZOO_TADAM)
    cfg = RunConfig.from_dict(ckpt.meta["config"], source=str(ZOO_TADAM))
    tadam = build_algorithm(cfg)
    tadam.load_state_dict(ckpt.weights)
    tadam.eval()
    samplers = alphabet_samplers(omniglot_split(cfg.data.split, "test", ROOT), EpisodeSpec(5, 1, 1), transform=to_float_image)
    d = alphabet_distances(tadam.embed_task, samplers, episodes=4, generator=torch.Generator().manual_seed(0))
    assert d.same < 0.9 * d.different, d
