"""The other algorithms on texts: the hashing encoder inside torch.func (ANIL's inner loop), Baseline++'s
pretraining batches of texts, and the 150-way CLINC150 setting on tiny stand-in data."""
import pytest
import torch
from torch.func import functional_call, grad

from learnfast.algorithms import ProtoNet
from learnfast.data.labelled import LabelledData
from learnfast.models.probe import output_shape
from learnfast.models.text import HashingEncoder
from learnfast.train import clinc150_full
from learnfast.train.build import build_algorithm
from learnfast.train.config import ConfigError, load_config


def test_hashing_encoder_inside_torch_func_matches_outside():
    torch.manual_seed(0)
    encoder = HashingEncoder(buckets=50, dim=4, out_features=3)
    ids = torch.randint(0, 51, (6, 9))
    ids[:, 5:] = 50  # padding
    ids[0] = 50  # an empty text: the zero vector, as nn.EmbeddingBag gives
    head = {k: v.detach() for k, v in encoder.named_parameters() if k.startswith("head.")}

    def loss(h):  # the embedding's weight requires grad but is not differentiated: ANIL's inner loop on the head
        return functional_call(encoder, h, (ids,), strict=False).pow(2).sum()

    inside = grad(loss)(head)
    outside = torch.autograd.grad(loss({k: v.requires_grad_() for k, v in head.items()}), list(head.values()))
    for got, expected in zip(inside.values(), outside):
        torch.testing.assert_close(got, expected)
    assert output_shape(HashingEncoder(buckets=50, dim=4)) == (4,)  # the probe feeds token ids


def test_anil_on_the_hashing_encoder_adapts_and_reaches_every_weight():
    cfg = load_config("anil-clinc150-5w1s")
    anil = build_algorithm(cfg)
    gen = torch.Generator().manual_seed(0)
    ids = lambda n: torch.randint(0, 16384, (2, n, 12), generator=gen)
    labels = lambda k: torch.arange(5).repeat_interleave(k).expand(2, -1)
    from learnfast.tasks import Task

    batch = Task(ids(5), labels(1), ids(10), labels(2))
    out = anil.meta_loss(batch)
    out.loss.backward()
    assert torch.isfinite(out.loss) and out.predictions.shape == (2, 10, 5)
    assert anil.model.embedding.weight.grad.abs().sum() > 0 and anil.model.head.weight.grad.abs().sum() > 0


def test_the_150_way_setting_is_nearest_class_mean_for_identity_protonet(monkeypatch):
    gen = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 6, generator=gen)
    texts = {part: [f"{part}{i}" for i in range(n)] for part, n in (("train", 20), ("test", 12))}
    vectors = {f"train{i}": centres[i // 5] + 0.8 * torch.randn(6, generator=gen) for i in range(20)}
    vectors |= {f"test{i}": centres[i // 3] + 0.8 * torch.randn(6, generator=gen) for i in range(12)}
    fake = lambda part, root=None: LabelledData(texts[part], torch.arange(4).repeat_interleave(5 if part == "train" else 3),
                                                ["a", "b", "c", "d"], part)
    monkeypatch.setattr(clinc150_full, "clinc150_official", fake)
    monkeypatch.setattr(clinc150_full, "encode_texts", lambda cfg, t: torch.stack([vectors[x] for x in t]))
    cfg = load_config("protonet-clinc150-5w1s")
    result = clinc150_full.full_intent_accuracy(ProtoNet(torch.nn.Identity()), cfg, shots=2, trials=3)
    assert result["ways"] == 4 and result["queries"] == 12 and len(result["scores"]) == 3
    for trial, score in enumerate(result["scores"]):  # by hand: the same draws, nearest class mean
        g = torch.Generator().manual_seed(clinc150_full.FULL_SEED + trial)
        means = torch.stack([torch.stack([vectors[f"train{5 * c + j}"] for j in torch.randperm(5, generator=g)[:2].tolist()]).mean(0)
                             for c in range(4)])
        test = torch.stack([vectors[f"test{i}"] for i in range(12)])
        expected = (torch.cdist(test, means).argmin(-1) == torch.arange(4).repeat_interleave(3)).float().mean().item()
        assert score == pytest.approx(expected)
    with pytest.raises(ConfigError, match="not 150"):
        clinc150_full.full_intent_accuracy(build_algorithm(load_config("anil-clinc150-5w1s")), cfg)
