"""The public path from a checkpoint to numbers: lf.load, lf.evaluate, lf.predict, and the README's example."""
import json
import os
import re

import pytest
import torch

import learnfast as lf
from conftest import REPO_ROOT
from learnfast.cli import main
from learnfast.data.omniglot import omniglot_split
from learnfast.episodes import EpisodeSampler, EpisodeSpec
from learnfast.train.build import to_float_image

ZOO = REPO_ROOT / "zoo"


def test_load_restores_config_and_weights():
    protonet = lf.load(ZOO / "protonet-omniglot.safetensors", ways=20)
    assert isinstance(protonet, lf.ProtoNet) and not protonet.training
    assert protonet.run_config.eval.ways == 20 and protonet.run_config.algorithm["name"] == "protonet"
    again = lf.load(ZOO / "protonet-omniglot.safetensors")
    assert all(torch.equal(a, b) for a, b in zip(protonet.state_dict().values(), again.state_dict().values()))


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(lf.train.checkpoint.CheckpointError, match="checkpoint not found"):
        lf.load(tmp_path / "nothing.safetensors")


def test_evaluate_needs_a_source_or_a_loaded_algorithm():
    with pytest.raises(ValueError, match="pass source="):
        lf.evaluate(lf.ProtoNet(lf.Conv4()))


def test_evaluate_equals_the_cli(data_root, capsys):
    protonet = lf.load(ZOO / "protonet-omniglot.safetensors")
    result = lf.evaluate(protonet, episodes=20, data_root=data_root)
    assert main(["eval", str(ZOO / "protonet-omniglot.safetensors"), "--episodes", "20", "--json", "--no-progress",
                 "--data-root", str(data_root)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert result.episodes == 20 and result.mean == report["mean"] and result.ci95 == report["ci95"]


def test_evaluate_with_a_source_of_ones_own():
    x, y = torch.randn(60, 8), torch.arange(10).repeat_interleave(6)
    sampler = EpisodeSampler(x, y, EpisodeSpec(ways=3, shots=1, queries=2))
    result = lf.evaluate(lf.ProtoNet(torch.nn.Identity()), sampler, episodes=7, seed=1)
    assert result.episodes == 7 and 0.0 <= result.mean <= 1.0


@pytest.fixture(scope="module")
def test_episodes():
    from conftest import omniglot_root

    root = omniglot_root()
    if not (root / "omniglot" / "images_evaluation.zip").is_file():
        pytest.skip("Omniglot data not found")
    split = omniglot_split("vinyals", "test", root)
    sampler = EpisodeSampler(split.images, split.labels, EpisodeSpec(ways=5, shots=1, queries=4), transform=to_float_image)
    return sampler.sample(4, torch.Generator().manual_seed(0))


@pytest.mark.parametrize("file", ["maml-omniglot-5w1s.safetensors", "protonet-omniglot.safetensors"])
def test_predict_gives_one_image_the_answer_it_gets_in_a_batch(test_episodes, file):
    algorithm = lf.load(ZOO / file)
    correct = 0
    for i in range(test_episodes.batch_size):
        task = lf.task_at(test_episodes, i)
        together = lf.predict(algorithm, task.support_x, task.support_y, task.query_x)
        alone = torch.cat([lf.predict(algorithm, task.support_x, task.support_y, task.query_x[j:j + 1]) for j in range(len(task.query_x))])
        torch.testing.assert_close(alone, together, atol=1e-4, rtol=1e-4)
        correct += (alone.argmax(-1) == task.query_y).sum().item()
    assert correct >= 0.9 * test_episodes.query_y.numel()  # 5-way 1-shot, one image at a time


def test_transductive_prediction_of_one_image_is_what_goes_wrong(test_episodes):
    maml = lf.load(ZOO / "maml-omniglot-5w1s.safetensors")
    alone, together = 0, 0
    for i in range(test_episodes.batch_size):
        task = lf.task_at(test_episodes, i)
        one = lambda j: lf.predict(maml, task.support_x, task.support_y, task.query_x[j:j + 1], transductive=True)
        alone += sum((one(j).argmax(-1) == task.query_y[j]).item() for j in range(len(task.query_x)))
        all_at_once = lf.predict(maml, task.support_x, task.support_y, task.query_x, transductive=True)
        together += (all_at_once.argmax(-1) == task.query_y).sum().item()
    n = test_episodes.query_y.numel()
    assert together >= 0.9 * n and alone <= 0.6 * n, (together, alone, n)  # one image normalised by itself
    assert maml.inner.bn == "transductive"  # predict swaps the policy only inside its own call


def test_readme_python_example_runs(data_root, monkeypatch, capsys):
    text = (REPO_ROOT / "README.md").read_text()
    blocks = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "lf.load(" in b]
    assert blocks, "README has no python example using lf.load"
    monkeypatch.chdir(REPO_ROOT)
    monkeypatch.setenv("LEARNFAST_DATA", str(data_root))
    exec(compile(blocks[0], "README.md", "exec"), {})
    assert "accuracy" in capsys.readouterr().out
