"""Model averaging of few-shot learners: the ensemble of identical members is the member, weights are checked,
and `learnfast ensemble` scores members and ensemble on the same episodes."""
import json

import pytest
import torch

import learnfast as lf
from conftest import blob_tasks
from learnfast.selection.ensemble import Ensemble

pytest.importorskip("sklearn")  # learnfast.selection is the [select] extra


def test_an_ensemble_of_one_learner_predicts_as_it_does():
    protonet = lf.ProtoNet(torch.nn.Identity())
    batch = blob_tasks(2, torch.Generator().manual_seed(0))
    alone = protonet(batch).softmax(-1)
    torch.testing.assert_close(Ensemble([protonet, protonet]).eval()(batch).exp(), alone, atol=1e-6, rtol=1e-5)


def test_weights_are_checked():
    protonet = lf.ProtoNet(torch.nn.Identity())
    with pytest.raises(ValueError, match="at least one member"):
        Ensemble([])
    with pytest.raises(ValueError, match="non-negative numbers"):
        Ensemble([protonet], weights=[-1.0])


def test_cli_ensemble_on_omniglot(tmp_path, data_root, capsys):
    from learnfast.cli import main
    from learnfast.train.build import build_algorithm
    from learnfast.train.checkpoint import Checkpoint, save_checkpoint
    from learnfast.train.config import RunConfig

    paths = []
    for seed in (0, 1):
        cfg = RunConfig(name=f"p{seed}", algorithm={"name": "protonet"})
        cfg.model.hidden, cfg.eval.queries = 4, 2
        paths.append(tmp_path / f"p{seed}.safetensors")
        save_checkpoint(paths[-1], Checkpoint(weights=build_algorithm(cfg, seed=seed).state_dict(), meta={"config": cfg.to_dict()}))
    args = ["ensemble", *map(str, paths), "--episodes", "6", "--data-root", str(data_root), "--no-progress"]
    assert main([*args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["members"]) == {"p0", "p1"} and report["episodes"] == 6
    assert 0 <= report["ensemble"]["mean"] <= 1 and report["best_member"] in report["members"]
    assert main(["ensemble", str(paths[0])]) == 2
    assert "at least two checkpoints" in capsys.readouterr().err
