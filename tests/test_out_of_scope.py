"""Out-of-scope rejection: the threshold rule and report on hand-made confidences, episodes with out-of-scope
queries, and `predict --reject-below`."""
import json

import pytest
import torch

from learnfast.algorithms import ProtoNet
from learnfast.cli import main
from learnfast.episodes import EpisodeSampler, EpisodeSpec
from learnfast.train.out_of_scope import Confidences, choose_threshold, confidences, rejection_report


def test_threshold_separates_confident_in_scope_from_out_of_scope():
    c = Confidences(in_scope=torch.tensor([[0.9, 0.8, 0.7, 0.3]]), correct=torch.tensor([[True, True, False, True]]),
                    out_of_scope=torch.tensor([[0.2, 0.4, 0.75]]))
    tau = choose_threshold(c)
    # tau in (0.75, 0.8] keeps the 2 right ones at 0.9 and 0.8 (accuracy 0.5) and rejects all 3 out-of-scope (1.0):
    # 1.5, against 0.5 + 2/3 in (0.4, 0.7]; the lowest such grid point is 0.751
    assert tau == pytest.approx(0.751, abs=1e-6)
    report = rejection_report(c, tau)
    assert report["in_scope_accuracy_with_rejection"]["mean"] == pytest.approx(0.5)
    assert report["in_scope_accuracy_without_rejection"]["mean"] == pytest.approx(0.75)
    assert report["in_scope_rejected"]["mean"] == pytest.approx(0.5)
    assert report["oos_rejected"]["mean"] == pytest.approx(1.0)
    assert report["oos_assigned_at_0.5"]["mean"] == pytest.approx(1 / 3)
    assert report["oos_assigned_at_0.9"]["mean"] == 0.0


def test_episodes_get_out_of_scope_queries_and_identity_protonet_is_scored_by_hand():
    gen = torch.Generator().manual_seed(0)
    centres = torch.randn(6, 4, generator=gen) * 5
    x = centres.repeat_interleave(5, 0) + 0.1 * torch.randn(30, 4, generator=gen)
    source = EpisodeSampler(x, torch.arange(6).repeat_interleave(5), EpisodeSpec(3, 1, 2))
    far = torch.full((4, 4), 100.0)  # far from every class: ProtoNet's softmax is still confident in the nearest one
    c = confidences(ProtoNet(torch.nn.Identity()), source, far, episodes=5, seed=0)
    assert c.in_scope.shape == (5, 6) and c.out_of_scope.shape == (5, 4)  # as many as the in-scope queries, at most the pool
    assert bool(c.correct.all())  # well separated blobs
    assert torch.allclose(c.out_of_scope, torch.ones(5, 4))  # the nearest prototype wins outright: nothing to reject by


def test_predict_rejects_below_the_threshold(tmp_path, capsys):
    from test_train_custom_data import TINY, write_texts

    data = write_texts(tmp_path / "m.csv")
    out = tmp_path / "run"
    assert main(["train", "protonet-clinc150-5w1s", "--data", str(data), *TINY, "--out", str(out)]) == 0
    (tmp_path / "q.txt").write_text("alpha theta request number 1\nsomething else entirely\n")
    capsys.readouterr()
    args = ["predict", str(out / "best.safetensors"), "--support", str(data), "--query", str(tmp_path / "q.txt"), "--json"]
    assert main(args) == 0
    rows = json.loads(capsys.readouterr().out)
    assert main([*args, "--reject-below", "1.0"]) == 0  # nothing reaches probability 1 among 12 classes
    rejected = json.loads(capsys.readouterr().out)
    assert [r["label"] for r in rejected] == ["out-of-scope"] * 2
    assert [r["probability"] for r in rejected] == [r["probability"] for r in rows]
    assert main([*args, "--reject-below", "0"]) == 0
    assert [r["label"] for r in json.loads(capsys.readouterr().out)] == [r["label"] for r in rows]
    with pytest.raises(SystemExit):
        main([*args, "--reject-below", "1.5"])
    assert "must be a probability" in capsys.readouterr().err


def test_out_of_scope_needs_clinc150(tmp_path, capsys):
    from test_train_custom_data import TINY, write_texts

    data = write_texts(tmp_path / "m.csv")
    out = tmp_path / "run"
    assert main(["train", "protonet-clinc150-5w1s", "--data", str(data), *TINY, "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["eval", str(out / "best.safetensors"), "--episodes", "2", "--out-of-scope", "--no-progress"]) == 2
    assert "CLINC150's out-of-scope utterances" in capsys.readouterr().err
