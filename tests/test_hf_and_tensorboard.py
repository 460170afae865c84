"""The optional extras: a Hugging Face `datasets` folder on disk (learnfast[hf]) and TensorBoard events
(learnfast[tensorboard]); each missing extra is a one-line error naming the install."""
import sys

import numpy as np
import pytest

from learnfast.data.hf import is_hf_dataset, load_hf_dataset
from learnfast.data.labelled import DataError


def test_missing_datasets_names_the_extra(tmp_path, monkeypatch):
    (tmp_path / "state.json").write_text("{}")
    monkeypatch.setitem(sys.modules, "datasets", None)  # as if it were not installed
    assert is_hf_dataset(tmp_path)
    with pytest.raises(ImportError, match=r"pip install 'learnfast\[hf\]'"):
        load_hf_dataset(tmp_path)


def test_texts_with_class_labels_and_splits(tmp_path):
    datasets = pytest.importorskip("datasets")
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["greet", "bye"])})
    data = datasets.Dataset.from_dict({"text": ["hi", "hello", "bye now"], "label": [0, 0, 1]}, features=features)
    data.save_to_disk(str(tmp_path / "one"))
    loaded = load_hf_dataset(tmp_path / "one")
    assert loaded.inputs == ["hi", "hello", "bye now"] and loaded.class_names == ["bye", "greet"]  # ids -> names, sorted
    assert loaded.labels.tolist() == [1, 1, 0]
    datasets.DatasetDict({"train": data}).save_to_disk(str(tmp_path / "dict"))
    with pytest.raises(DataError, match=r"holds the splits \['train'\]; choose one with split="):
        load_hf_dataset(tmp_path / "dict")
    assert load_hf_dataset(tmp_path / "dict", split="train").labels.tolist() == [1, 1, 0]
    with pytest.raises(DataError, match="no label column 'intent'"):
        load_hf_dataset(tmp_path / "one", label="intent")


def test_images_and_labels_differing_in_case(tmp_path):
    datasets = pytest.importorskip("datasets")
    from PIL import Image

    pictures = [Image.fromarray(np.full((10, 12), v, dtype=np.uint8)) for v in (0, 128, 255)]
    data = datasets.Dataset.from_dict({"image": pictures, "label": ["a", "b", "b"]},
                                      features=datasets.Features({"image": datasets.Image(), "label": datasets.Value("string")}))
    data.save_to_disk(str(tmp_path / "img"))
    loaded = load_hf_dataset(tmp_path / "img", size=8)
    assert loaded.inputs.shape == (3, 1, 8, 8) and loaded.inputs[1].float().mean().item() == pytest.approx(128, abs=1)
    datasets.Dataset.from_dict({"text": ["x", "y"], "label": ["Cat", "cat"]}).save_to_disk(str(tmp_path / "case"))
    with pytest.raises(DataError, match="differ only in case"):
        load_hf_dataset(tmp_path / "case")


def test_report_tensorboard(tmp_path, capsys, monkeypatch):
    from learnfast.cli import main

    run = tmp_path / "run"
    assert main(["train", "--algorithm", "maml", "--dataset", "sinusoid", "--backbone", "mlp", "--shots", "5", "--queries", "5",
                 "--meta-batch", "2", "--iterations", "20", "--val-every", "10", "--val-episodes", "2", "--set", "model.hidden=8",
                 "--no-progress", "--out", str(run)]) == 0
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    assert main(["report", str(run), "--tensorboard", str(tmp_path / "tb")]) == 2
    assert "pip install 'learnfast[tensorboard]'" in capsys.readouterr().err
    monkeypatch.delitem(sys.modules, "torch.utils.tensorboard")
    pytest.importorskip("tensorboard")
    assert main(["report", str(run), "--tensorboard", str(tmp_path / "tb")]) == 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert {"train/loss", "train/lr", "val/mse"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("val/mse")] == [10, 20]
