"""Lake's 20 one-shot runs: shapes, labels from class_labels.txt, the evaluator on an oracle and on
pixel nearest neighbour, and every error path (on synthetic zips)."""
import io
import zipfile

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import learnfast as lf
from learnfast.data import load_omniglot
from learnfast.data.lake_runs import evaluate_lake_runs, load_lake_runs
from learnfast.data.omniglot import OmniglotDataError
from conftest import omniglot_root


@pytest.fixture(scope="module")
def runs_root():
    root = omniglot_root()
    if not (root / "omniglot" / "all_runs.zip").is_file():
        pytest.skip(f"all_runs.zip not found under {root / 'omniglot'}; set LEARNFAST_DATA")
    return root


@pytest.fixture(scope="module")
def runs(runs_root):
    return load_lake_runs(runs_root)


class Oracle(nn.Module):
    """Knows the answers: one-hot query labels as logits."""

    def forward(self, batch):
        return F.one_hot(batch.query_y, 20).float()


def test_shapes_and_values(runs):
    assert [tuple(t.shape) for t in runs] == [(20, 20, 1, 28, 28), (20, 20), (20, 20, 1, 28, 28), (20, 20)]
    assert runs.support_x.dtype == torch.float32 and runs.query_x.dtype == torch.float32
    for x in (runs.support_x, runs.query_x):
        assert x.min() == 0 and x.max() == 1 and x.mean() < 0.5  # ink = 1 is the minority
    assert torch.equal(runs.support_y, torch.arange(20).expand(20, 20))


def test_query_labels_are_a_permutation_per_run(runs):
    for r in range(20):
        assert torch.equal(runs.query_y[r].sort().values, torch.arange(20))
    assert runs.query_y[0, 0] == 7  # run01/test/item01.png -> run01/training/class08.png


def test_same_decoding_as_the_omniglot_archives(data_root, runs):
    """Every run image is a drawing of the evaluation set, decoded identically."""
    archive = load_omniglot("images_evaluation", data_root)
    pool = {archive.images[c, d].tobytes() for c in range(archive.images.shape[0]) for d in range(20)}
    as_uint8 = (runs.support_x[:2, :, 0] * 255).round().to(torch.uint8).numpy()
    assert all(image.tobytes() in pool for image in as_uint8.reshape(-1, 28, 28))


def test_perfect_oracle_scores_one(runs_root):
    oracle = Oracle()
    result = evaluate_lake_runs(oracle, runs_root)
    assert result.metric == "accuracy" and result.episodes == 20 and result.mean == 1.0
    assert oracle.training  # mode restored


def test_pixel_nearest_neighbour_is_well_above_chance(runs_root):
    """Lake et al. report about 21.7% for nearest neighbour on raw pixels; chance is 5%."""
    result = evaluate_lake_runs(lf.ProtoNet(nn.Flatten()), runs_root)
    assert 0.15 < result.mean < 0.35
    for batch_size in (7, 20):  # scores do not depend on how the runs are batched
        assert torch.equal(evaluate_lake_runs(lf.ProtoNet(nn.Flatten()), runs_root, batch_size=batch_size).values, result.values)
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        evaluate_lake_runs(lf.ProtoNet(nn.Flatten()), runs_root, batch_size=0)


# -- error paths (synthetic files in tmp_path) ---------------------------------------------------

def test_missing_zip(tmp_path):
    with pytest.raises(OmniglotDataError) as info:
        load_lake_runs(tmp_path / "nowhere")
    message = str(info.value)
    assert str((tmp_path / "nowhere" / "omniglot" / "all_runs.zip").resolve()) in message
    assert "LEARNFAST_DATA" in message and "one-shot-classification/all_runs.zip" in message


def png_bytes():
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ones((105, 105), dtype=bool)).convert("1").save(buf, format="PNG")
    return buf.getvalue()


def synthetic_runs(drop=None, labels=None):
    """A zip laid out like all_runs.zip (blank images; item i of every run belongs to class 21 - i)."""
    png, entries = png_bytes(), {}
    for r in range(1, 21):
        for i in range(1, 21):
            entries[f"run{r:02d}/training/class{i:02d}.png"] = png
            entries[f"run{r:02d}/test/item{i:02d}.png"] = png
        entries[f"run{r:02d}/class_labels.txt"] = labels or "".join(
            f"run{r:02d}/test/item{i:02d}.png run{r:02d}/training/class{21 - i:02d}.png\n" for i in range(1, 21))
    entries.pop(drop, None)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buf.getvalue()


def put(tmp_path, data):
    (tmp_path / "omniglot").mkdir(parents=True, exist_ok=True)
    (tmp_path / "omniglot" / "all_runs.zip").write_bytes(data)
    return tmp_path


def test_synthetic_runs_read_with_verify_false(tmp_path):
    root = put(tmp_path, synthetic_runs())
    runs = load_lake_runs(root, verify=False)
    assert torch.equal(runs.query_y, (19 - torch.arange(20)).expand(20, 20))
    assert runs.support_x.abs().sum() == 0  # blank (white) images: no ink
    with pytest.raises(OmniglotDataError, match="does not match the official all_runs.zip.*verify=False"):
        load_lake_runs(root)


def test_missing_zip_without_a_root_lists_every_place(tmp_path, monkeypatch):
    main = (tmp_path / "main")
    main.mkdir()
    main = main.resolve()
    monkeypatch.chdir(main)
    monkeypatch.delenv("LEARNFAST_DATA", raising=False)
    with pytest.raises(OmniglotDataError) as info:
        load_lake_runs()
    message = str(info.value)
    assert str(main / "data" / "omniglot" / "all_runs.zip") in message
    assert f"./data = {main / 'data'}" in message and f"../shared/data = {main.parent / 'shared' / 'data'}" in message
    assert "none holds omniglot/" in message and "LEARNFAST_DATA / --data-root" in message


def test_runs_found_in_shared_data_without_a_root(tmp_path, monkeypatch):
    main = (tmp_path / "main")
    main.mkdir()
    monkeypatch.chdir(main.resolve())
    monkeypatch.delenv("LEARNFAST_DATA", raising=False)
    put(tmp_path / "shared" / "data", synthetic_runs())
    runs = load_lake_runs(verify=False)
    assert torch.equal(runs.query_y, (19 - torch.arange(20)).expand(20, 20))


def test_not_a_zip(tmp_path):
    root = put(tmp_path, b"not a zip" * 100)
    with pytest.raises(OmniglotDataError, match="all_runs.zip: cannot read .*corrupt or incomplete.*LEARNFAST_DATA"):
        load_lake_runs(root, verify=False)


def test_missing_entry_is_named(tmp_path):
    root = put(tmp_path, synthetic_runs(drop="run07/test/item13.png"))
    with pytest.raises(OmniglotDataError, match="cannot read run07/test/item13.png"):
        load_lake_runs(root, verify=False)


@pytest.mark.parametrize("labels, message", [
    ("run01/test/item01.png class01.png\n", "unexpected line"),
    ("".join(f"run01/test/item{i:02d}.png run01/training/class01.png\n" for i in range(1, 20)), "maps 19 test items"),
    ("".join(f"run01/test/item{i:02d}.png run01/training/class{i + 1:02d}.png\n" for i in range(1, 21)), "outside 01..20"),
])
def test_malformed_class_labels(tmp_path, labels, message):
    root = put(tmp_path, synthetic_runs(labels=labels))
    with pytest.raises(OmniglotDataError, match=f"run01/class_labels.txt: .*{message}"):
        load_lake_runs(root, verify=False)
