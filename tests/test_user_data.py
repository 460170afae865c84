"""Users' own data: class folders of images, CSV / JSONL texts, arrays and .npz files, with every bad input
refused by name; episodes drawn from them."""
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from learnfast.data.folders import image_folder
from learnfast.data.labelled import DataError, array_dataset, load_npz
from learnfast.data.text import text_classification
from learnfast.episodes import EpisodeSpec


def write_image(path, value, size=(40, 30), mode="L"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value if mode == "L" else (value, 0, 255 - value)).save(path)


@pytest.fixture
def folder(tmp_path, fresh_cache):
    root = tmp_path / "photos"
    for c, name in enumerate(["cat", "dog", "emu"]):
        for i in range(4):
            write_image(root / name / f"{i}.png" if i % 2 else root / name / f"{i}.JPG", 40 * c + i)
    (root / "notes.txt").write_text("not a class")  # a stray file beside the class folders
    return root


def test_image_folder_reads_decodes_and_caches(folder, fresh_cache):
    data = image_folder(folder, size=16)
    assert data.class_names == ["cat", "dog", "emu"] and data.inputs.shape == (12, 1, 16, 16)
    assert data.inputs.dtype == torch.uint8 and data.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert int(data.inputs[4].float().mean().round()) == 40  # dog's first image, grey value 40
    assert len(list(fresh_cache.glob("folder_*.npy"))) == 1
    again = image_folder(folder, size=16)
    assert torch.equal(again.inputs, data.inputs)
    assert image_folder(folder, size=16, invert=True).inputs[4].float().mean().round() == 255 - 40
    rgb = image_folder(folder, size=8, channels=3)
    assert rgb.inputs.shape == (12, 3, 8, 8)
    batch = data.sampler(EpisodeSpec(3, 1, 2), transform=lambda x: x.float() / 255).sample(2, torch.Generator().manual_seed(0))
    assert batch.support_x.shape == (2, 3, 1, 16, 16) and batch.query_x.dtype == torch.float32


def test_a_changed_file_is_decoded_again(folder):
    first = image_folder(folder, size=8)
    write_image(folder / "cat" / "1.png", 200)
    os.utime(folder / "cat" / "1.png", ns=(1, 1))
    assert not torch.equal(image_folder(folder, size=8).inputs, first.inputs)


def test_unreadable_image_is_named(folder):
    (folder / "dog" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"broken\.png: not a readable image"):
        image_folder(folder)


def test_empty_class_folder_is_named(folder):
    (folder / "fox").mkdir()
    with pytest.raises(DataError, match=r"fox: no images"):
        image_folder(folder)


def test_links_and_paths_leaving_the_root_are_refused(folder, tmp_path):
    outside = tmp_path / "outside.png"
    write_image(outside, 3)
    (folder / "cat" / "link.png").symlink_to(outside)
    with pytest.raises(DataError, match="symbolic links are not followed"):
        image_folder(folder)
    (folder / "cat" / "link.png").unlink()
    (folder / "owl").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(DataError, match="symbolic links are not followed"):
        image_folder(folder)


def test_too_few_examples_for_the_episodes_names_the_classes(folder):
    data = image_folder(folder, size=8)
    with pytest.raises(DataError, match=r"need 5 examples per class; 3 classes have fewer: 'cat' \(4\)"):
        data.sampler(EpisodeSpec(3, 1, 4))
    with pytest.raises(DataError, match="5-way episodes need 5 classes; it has 3"):
        data.sampler(EpisodeSpec(5, 1, 1))


def test_not_a_folder(tmp_path):
    with pytest.raises(DataError, match="is not a folder"):
        image_folder(tmp_path / "missing")


def test_csv_and_jsonl_texts(tmp_path):
    csv_path = tmp_path / "intents.csv"
    csv_path.write_text('message,intent\n"where is my parcel, please",track\nrefund me,refund\n"héllo ✓",greet\n', encoding="utf-8")
    data = text_classification(csv_path, text="message", label="intent")
    assert data.inputs == ["where is my parcel, please", "refund me", "héllo ✓"]
    assert data.class_names == ["greet", "refund", "track"] and data.labels.tolist() == [2, 1, 0]
    jsonl = tmp_path / "intents.jsonl"
    jsonl.write_text("\n".join(json.dumps({"text": t, "label": l}) for t, l in [("hi", "greet"), ("bye", "leave")]) + "\n")
    assert text_classification(jsonl).class_names == ["greet", "leave"]
    bom = tmp_path / "bom.csv"
    bom.write_bytes("text,label\nhi,greet\n".encode("utf-8-sig"))
    assert text_classification(bom).inputs == ["hi"]


@pytest.mark.parametrize("content, message", [
    (b"text,label\nhi,greet\n\xff\xfe,bad\n", r"not UTF-8 \(byte 20, line 3"),
    (b"words,label\nhi,greet\n", r"line 2: no 'text' field"),
    (b"text,label\n  ,greet\n", "line 2: the text is empty"),
    (b"text,label\nhi,Refund\nho,refund\n", "labels 'Refund' and 'refund' differ only in case"),
    (b"", "is empty; the first line must name the columns"),
])
def test_bad_text_files_are_refused_by_line(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        text_classification(path)


def test_bad_jsonl_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "hi", "label": "a"}\n[1, 2]\n')
    with pytest.raises(DataError, match="line 2: a JSONL line must be an object"):
        text_classification(path)


def test_arrays_and_npz(tmp_path):
    x, y = np.random.default_rng(0).normal(size=(12, 5)).astype(np.float32), np.array(["b", "a", "c"] * 4)
    data = array_dataset(x, y)
    assert data.class_names == ["a", "b", "c"] and data.labels[:3].tolist() == [1, 0, 2] and data.inputs.shape == (12, 5)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    assert torch.equal(load_npz(tmp_path / "d.npz").labels, data.labels)
    with pytest.raises(DataError, match="12 inputs but 11 labels"):
        array_dataset(x, y[:11])
    with pytest.raises(DataError, match="NaN or inf"):
        array_dataset(np.full((3, 2), np.nan), [0, 1, 2])
    np.savez(tmp_path / "wrong.npz", features=x)
    with pytest.raises(DataError, match=r"no array named \['x', 'y'\]"):
        load_npz(tmp_path / "wrong.npz")
    (tmp_path / "junk.npz").write_text("junk")
    with pytest.raises(DataError, match="not a readable .npz"):
        load_npz(tmp_path / "junk.npz")
    np.savez(tmp_path / "objects.npz", x=x, y=np.array([{"a": 1}] * 12, dtype=object))
    with pytest.raises(DataError, match="not a readable .npz"):
        load_npz(tmp_path / "objects.npz")  # pickled objects are never loaded
