"""Omniglot from the official zips: layout, splits, rotations, caching, and every error path.

The data-root rule has its own tests in test_root.py.
"""
import hashlib
import io
import json
import re
import shutil
import time
import zipfile

import numpy as np
import pytest
import torch

from learnfast.data import OmniglotDataError, load_omniglot, omniglot_split
from learnfast.data import omniglot


def character_hashes(images):
    """One digest per character (all 20 drawings), to compare characters across splits."""
    images = np.asarray(images)
    return [hashlib.sha1(images[i].tobytes()).hexdigest() for i in range(images.shape[0])]


# -- real data ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name, chars, alphabets", [("images_background", 964, 30), ("images_evaluation", 659, 20)])
def test_archive_shapes(data_root, name, chars, alphabets):
    archive = load_omniglot(name, data_root)
    assert archive.images.shape == (chars, 20, 28, 28)
    assert archive.images.dtype == np.uint8
    assert archive.images.mean() < 128  # ink = 255 is the minority
    assert np.median(archive.images) == 0  # background is 0 after inversion
    assert archive.images.max() == 255
    assert len(archive.characters) == chars and len(set(archive.characters)) == chars
    assert len(archive.alphabets) == chars and len(set(archive.alphabets)) == alphabets
    assert all(c.startswith(a + "/") for a, c in zip(archive.alphabets, archive.characters))


@pytest.fixture(scope="module")
def decoded_evaluation(data_root, tmp_path_factory):
    """The evaluation archive decoded once from scratch into an empty LEARNFAST_CACHE (a few seconds)."""
    cache = tmp_path_factory.mktemp("decode_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LEARNFAST_CACHE", str(cache))
        archive = load_omniglot("images_evaluation", data_root)
    return cache, archive


def test_cache_is_written_and_fast(data_root, decoded_evaluation, monkeypatch):
    cache, first = decoded_evaluation
    cached = list(cache.glob("omniglot_images_evaluation_*.npz"))
    assert len(cached) == 1
    assert sorted(p.name for p in cache.iterdir()) == [cached[0].name]  # no temporary file left
    monkeypatch.setenv("LEARNFAST_CACHE", str(cache))
    started = time.perf_counter()
    second = load_omniglot("images_evaluation", data_root)
    assert time.perf_counter() - started < 2.0
    assert np.array_equal(first.images, second.images)
    assert list(first.alphabets) == list(second.alphabets)
    assert list(first.characters) == list(second.characters)


def test_two_runs_building_the_cache_at_once_both_succeed(data_root, decoded_evaluation, tmp_path, monkeypatch):
    """A second run that writes and publishes the cache between this run's write and its publish."""
    _, decoded = decoded_evaluation
    monkeypatch.setenv("LEARNFAST_CACHE", str(tmp_path))
    monkeypatch.setattr(omniglot, "_read_zip", lambda path, name: decoded)  # skip the slow decode
    real_savez, interleaved = np.savez, []

    def savez_then_other_run(file, **arrays):
        real_savez(file, **arrays)
        if not interleaved:
            interleaved.append(True)
            load_omniglot("images_evaluation", data_root)  # the other run, start to finish

    monkeypatch.setattr(omniglot.np, "savez", savez_then_other_run)
    archive = load_omniglot("images_evaluation", data_root)
    assert interleaved and np.array_equal(archive.images, decoded.images)
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and ".tmp" not in left[0]  # the cache alone, no temporary file left


def test_decoded_equals_default_cache(data_root, decoded_evaluation):
    """What the default cache serves equals a fresh decode (a stale or foreign cache would differ)."""
    _, fresh = decoded_evaluation
    assert np.array_equal(load_omniglot("images_evaluation", data_root).images, fresh.images)


def test_vinyals_split(data_root):
    parts = {p: omniglot_split("vinyals", p, data_root) for p in ("train", "val", "test")}
    assert {p: s.num_classes for p, s in parts.items()} == {"train": 4400, "val": 400, "test": 1692}
    for s in parts.values():
        assert s.images.dtype == torch.uint8 and s.images.shape == (s.num_classes * 20, 28, 28)
        assert torch.equal(s.labels, torch.arange(s.num_classes).repeat_interleave(20))

    # characters (rotation 0 = class 4c) are disjoint across parts and together are all 1623
    hashes = {p: set(character_hashes(s.images.view(-1, 4, 20, 28, 28)[:, 0].numpy())) for p, s in parts.items()}
    assert [len(h) for h in hashes.values()] == [1100, 100, 423]
    assert not hashes["train"] & hashes["val"]
    assert not hashes["train"] & hashes["test"]
    assert not hashes["val"] & hashes["test"]
    everything = np.concatenate([load_omniglot("images_background", data_root).images,
                                 load_omniglot("images_evaluation", data_root).images])
    assert hashes["train"] | hashes["val"] | hashes["test"] == set(character_hashes(everything))
    # the split is fixed: a second call gives the same classes
    again = omniglot_split("vinyals", "val", data_root)
    assert torch.equal(again.images, parts["val"].images)


def test_vinyals_rotations(data_root):
    split = omniglot_split("vinyals", "val", data_root)
    x = split.images.view(-1, 20, 28, 28)  # (classes, 20, 28, 28)
    for c in (0, 7, 99):
        for r in (1, 2, 3):
            assert torch.equal(x[4 * c + r], torch.rot90(x[4 * c], r, dims=(1, 2)))
        assert split.class_alphabets[4 * c] == split.class_alphabets[4 * c + 3]
    assert not torch.equal(x[1], x[0])


def test_lake_split(data_root):
    train, val, test = (omniglot_split("lake", p, data_root) for p in ("train", "val", "test"))
    assert (train.num_classes, val.num_classes, test.num_classes) == (864, 100, 659)
    background = load_omniglot("images_background", data_root)
    evaluation = load_omniglot("images_evaluation", data_root)
    h_train = set(character_hashes(train.images.view(-1, 20, 28, 28).numpy()))
    h_val = set(character_hashes(val.images.view(-1, 20, 28, 28).numpy()))
    assert not h_train & h_val
    assert h_train | h_val == set(character_hashes(background.images))  # train + val = the 964 background characters
    assert set(character_hashes(test.images.view(-1, 20, 28, 28).numpy())) == set(character_hashes(evaluation.images))


def test_bad_names(data_root):
    with pytest.raises(ValueError, match="unknown Omniglot archive"):
        load_omniglot("images_small", data_root)
    with pytest.raises(ValueError, match="unknown part 'dev'"):
        omniglot_split("vinyals", "dev", data_root)
    with pytest.raises(ValueError, match="unknown Omniglot split 'random'"):
        omniglot_split("random", "train", data_root)


# -- error paths (synthetic files in tmp_path; no real data needed) -----------------------------

def test_missing_folder(tmp_path):
    with pytest.raises(OmniglotDataError) as info:
        load_omniglot("images_background", tmp_path / "nowhere")
    message = str(info.value)
    assert str((tmp_path / "nowhere" / "omniglot" / "images_background.zip").resolve()) in message
    assert "LEARNFAST_DATA" in message


def test_missing_folder_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("LEARNFAST_DATA", str(tmp_path))
    with pytest.raises(OmniglotDataError, match="LEARNFAST_DATA") as info:
        load_omniglot("images_evaluation")
    assert str((tmp_path / "omniglot" / "images_evaluation.zip").resolve()) in str(info.value)


def put(tmp_path, data: bytes, name="images_background"):
    folder = tmp_path / "omniglot"
    folder.mkdir(exist_ok=True)
    (folder / f"{name}.zip").write_bytes(data)
    return tmp_path


def png_bytes(value=255):
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((105, 105), value, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def small_zip(entries):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buf.getvalue()


@pytest.mark.parametrize("verify", [False, True])
def test_corrupt_zip(tmp_path, verify):
    root = put(tmp_path, b"this is not a zip file at all" * 100)
    with pytest.raises(OmniglotDataError, match="not a readable zip" if not verify else "matches no known copy"):
        load_omniglot("images_background", root, verify=verify)


def test_wrong_structure(tmp_path, fresh_cache):
    png = png_bytes()
    entries = {f"images_background/Alpha/character{c:02d}/{c:04d}_{d:02d}.png": png for c in range(1, 4) for d in range(1, 21)}
    root = put(tmp_path, small_zip(entries))
    with pytest.raises(OmniglotDataError, match=r"has 1 alphabets / 3 characters .*expected 30 / 964") as info:
        load_omniglot("images_background", root, verify=False)
    assert "LEARNFAST_DATA" in str(info.value)
    assert not list(fresh_cache.iterdir())  # nothing cached from a bad archive


def test_wrong_drawing_count(tmp_path, fresh_cache):
    png = png_bytes()
    entries = {}
    for c in range(659):
        alphabet = f"Alpha{c % 20:02d}"
        for d in range(1, 21 if c else 19):  # the first character has only 18 drawings
            entries[f"images_evaluation/{alphabet}/character{c:03d}/{c:04d}_{d:02d}.png"] = png
    root = put(tmp_path, small_zip(entries), name="images_evaluation")
    with pytest.raises(OmniglotDataError, match=r"\(1 without 20 drawings\)"):
        load_omniglot("images_evaluation", root, verify=False)


def test_corrupt_image_in_right_structure(tmp_path, fresh_cache):
    png = png_bytes()
    entries = {}
    for c in range(659):
        for d in range(1, 21):
            entries[f"images_evaluation/Alpha{c % 20:02d}/character{c:03d}/{c:04d}_{d:02d}.png"] = png
    first = sorted(entries)[0]
    entries[first] = b"\x89PNG garbage"
    root = put(tmp_path, small_zip(entries), name="images_evaluation")
    with pytest.raises(OmniglotDataError, match="cannot decode .*archive is corrupt"):
        load_omniglot("images_evaluation", root, verify=False)
    assert not list(fresh_cache.iterdir())


def test_checksum_mismatch(tmp_path):
    png = png_bytes()
    root = put(tmp_path, small_zip({"images_background/A/character01/0001_01.png": png}))
    with pytest.raises(OmniglotDataError, match="matches no known copy of images_background.zip") as info:
        load_omniglot("images_background", root, verify=True)
    assert "verify=False" in str(info.value)


def test_truncated_cache_is_rebuilt_from_the_archive(data_root, decoded_evaluation, fresh_cache, capsys):
    """End to end, with the real decode: a cache cut in half (a crash, a full disk) is rebuilt, with a notice."""
    cache, good = decoded_evaluation
    (cached,) = cache.glob("omniglot_images_evaluation_*.npz")
    data = cached.read_bytes()
    (fresh_cache / cached.name).write_bytes(data[: len(data) // 2])
    again = load_omniglot("images_evaluation", data_root)
    assert np.array_equal(again.images, good.images) and again.characters == good.characters
    err = capsys.readouterr().err
    assert err.startswith(f"learnfast: rebuilding the Omniglot cache {fresh_cache / cached.name} (unreadable: BadZipFile")
    assert err.count("\n") == 1
    assert same_entries(fresh_cache / cached.name, cached)  # the rebuilt cache is the one a clean build writes


# -- the decode cache: every damaged form is rebuilt, a good one is used ---------------------------

SOURCE_SHA = "ab" * 32


def tiny_archive(n_chars=3, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n_chars, 20, 28, 28), dtype=np.uint8)
    alphabets = ["Alpha"] * (n_chars - 1) + ["Beta"]
    return omniglot.OmniglotArchive(images, alphabets, [f"{a}/character{i:02d}" for i, a in enumerate(alphabets)])


def npz_entries(path):
    with np.load(path) as z:
        return {key: z[key] for key in z.files}


def same_entries(path, other):
    """Same entries with equal arrays (the bytes differ: zip members carry their write time)."""
    a, b = npz_entries(path), npz_entries(other)
    return a.keys() == b.keys() and all(a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]) for k in a)


def damage(path, how):
    """Rewrites the cache at ``path`` in one of the ways caches go bad; returns the expected reason."""
    entries = npz_entries(path)
    if how == "empty":
        path.write_bytes(b"")
        return "empty file"
    if how == "text":
        path.write_text("<html>404 Not Found</html>\n")
        return "not an .npz file"
    if how == "npy":  # one array saved under the .npz name: np.load returns an array, not an archive
        with open(path, "wb") as f:
            np.save(f, entries["images"])
        return "not an .npz file"
    if how == "truncated":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        return "unreadable: BadZipFile"
    if how == "zeroed":  # a valid .npz with the right entries, record and shape
        entries["images"] = np.zeros_like(entries["images"])
    elif how == "float_dtype":  # the same values as float32
        entries["images"] = entries["images"].astype(np.float32)
    elif how == "scaled_range":  # the same shape and dtype, values in 0..1 (as if stored after / 255)
        entries["images"] = (entries["images"] > 127).astype(np.uint8)
    elif how == "shuffled_names":
        entries["characters"] = entries["characters"][::-1].copy()
    elif how == "old_format":  # as written by learnfast before the record existed
        entries.pop("meta", None)
    elif how == "object_names":
        entries["alphabets"] = entries["alphabets"].astype(object)
    elif how == "other_source":
        entries["meta"] = np.array(json.dumps({**json.loads(entries["meta"].item()), "source_sha256": "cd" * 32}))
    elif how == "bad_meta":
        entries["meta"] = np.array("not json")
    else:
        raise AssertionError(how)
    np.savez(path, **entries)
    return {
        "zeroed": "do not match the digest", "float_dtype": "images are float32", "scaled_range": "do not match the digest",
        "shuffled_names": "do not match the digest", "old_format": "no 'meta' entry", "object_names": "unreadable: ValueError",
        "other_source": "made from an archive with sha256 " + "cd" * 32, "bad_meta": "not a JSON record",
    }[how]


DAMAGES = ["empty", "text", "npy", "truncated", "zeroed", "float_dtype", "scaled_range", "shuffled_names", "old_format",
           "object_names", "other_source", "bad_meta"]


def test_cache_round_trip(tmp_path):
    archive, path = tiny_archive(), tmp_path / "c.npz"
    omniglot._write_cache(path, archive, SOURCE_SHA)
    again = omniglot._read_cache(path, SOURCE_SHA, 3)
    assert np.array_equal(again.images, archive.images) and again.images.dtype == np.uint8
    assert again.alphabets == archive.alphabets and again.characters == archive.characters
    assert all(type(name) is str for name in again.alphabets + again.characters)
    meta = json.loads(npz_entries(path)["meta"].item())
    assert meta["source_sha256"] == SOURCE_SHA and meta["shape"] == [3, 20, 28, 28] and meta["dtype"] == "|u1"
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]


@pytest.mark.parametrize("how", DAMAGES)
def test_damaged_cache_is_refused_with_its_reason(tmp_path, how):
    path = tmp_path / "c.npz"
    omniglot._write_cache(path, tiny_archive(), SOURCE_SHA)
    reason = damage(path, how)
    with pytest.raises(omniglot._StaleCache, match=re.escape(reason)):
        omniglot._read_cache(path, SOURCE_SHA, 3)


def test_cache_of_another_size_is_refused(tmp_path):
    path = tmp_path / "c.npz"
    omniglot._write_cache(path, tiny_archive(4), SOURCE_SHA)
    with pytest.raises(omniglot._StaleCache, match=r"images are uint8 \(4, 20, 28, 28\), expected uint8 \(3, 20, 28, 28\)"):
        omniglot._read_cache(path, SOURCE_SHA, 3)


@pytest.fixture
def counted_decodes(decoded_evaluation, monkeypatch):
    """Replaces the slow decode with the archive decoded once by ``decoded_evaluation``; counts the calls."""
    calls = []

    def read_zip(path, name):
        calls.append(name)
        return decoded_evaluation[1]

    monkeypatch.setattr(omniglot, "_read_zip", read_zip)
    return calls


@pytest.mark.parametrize("how", ["empty", "text", "npy", "zeroed", "float_dtype", "old_format"])
def test_damaged_cache_is_rebuilt_once_with_a_notice(data_root, decoded_evaluation, fresh_cache, counted_decodes, capsys, how):
    cache, good = decoded_evaluation
    (cached,) = cache.glob("omniglot_images_evaluation_*.npz")
    target = fresh_cache / cached.name
    shutil.copyfile(cached, target)
    reason = damage(target, how)
    archive = load_omniglot("images_evaluation", data_root)
    assert counted_decodes == ["images_evaluation"]
    assert np.array_equal(archive.images, good.images) and archive.images.dtype == np.uint8
    err = capsys.readouterr().err
    assert err.startswith(f"learnfast: rebuilding the Omniglot cache {target} (") and reason in err
    assert err.count("\n") == 1 and err.endswith(")\n")
    assert same_entries(target, cached)  # rewritten as a clean build writes it
    assert sorted(p.name for p in fresh_cache.iterdir()) == [cached.name]
    again = load_omniglot("images_evaluation", data_root)  # and now used as it is
    assert counted_decodes == ["images_evaluation"] and capsys.readouterr().err == ""
    assert np.array_equal(again.images, good.images)


def test_good_cache_is_used_without_decoding(data_root, decoded_evaluation, monkeypatch, capsys):
    cache, good = decoded_evaluation
    monkeypatch.setenv("LEARNFAST_CACHE", str(cache))

    def no_decode(path, name):
        raise AssertionError("a good cache was rebuilt")

    monkeypatch.setattr(omniglot, "_read_zip", no_decode)
    archive = load_omniglot("images_evaluation", data_root)
    assert np.array_equal(archive.images, good.images) and archive.characters == good.characters
    assert capsys.readouterr().err == ""


def synthetic_evaluation_zip():
    """A structurally valid images_evaluation.zip (20 alphabets / 659 characters / 20 drawings) of 1-bit PNGs.

    Drawing ``d`` is white with a black (ink) band of ``5 * d`` rows at the top, so ink grows with ``d``.
    """
    from PIL import Image

    pngs = []
    for d in range(1, 21):
        pixels = np.ones((105, 105), dtype=bool)  # True = white, as in Omniglot's mode-'1' PNGs
        pixels[: 5 * d] = False
        buf = io.BytesIO()
        Image.fromarray(pixels).convert("1").save(buf, format="PNG")
        pngs.append(buf.getvalue())
    entries = {}
    for c in range(659):
        alphabet = f"Script_{(c * 7) % 20:02d}"  # characters of an alphabet are not contiguous in the zip
        for d in range(20, 0, -1):  # written in reverse drawing order
            entries[f"images_evaluation/{alphabet}/character{c:03d}/{965 + c:04d}_{d:02d}.png"] = pngs[d - 1]
    return small_zip(entries)


def test_synthetic_archive_decodes_with_verify_false(tmp_path, fresh_cache):
    root = put(tmp_path, synthetic_evaluation_zip(), name="images_evaluation")
    archive = load_omniglot("images_evaluation", root, verify=False)
    assert archive.images.shape == (659, 20, 28, 28) and archive.images.dtype == np.uint8
    assert archive.characters == sorted(archive.characters)
    assert len(set(archive.alphabets)) == 20
    ink = archive.images.astype(np.int64).sum(axis=(2, 3))  # (659, 20)
    assert (np.diff(ink, axis=1) > 0).all()  # drawings in file-name order; ink (black) is 255 after inversion
    first = archive.images[0, 0]  # band of 5/105 of the height at the top
    assert first[0].min() >= 200 and first[-1].max() == 0
    assert len(list(fresh_cache.glob("omniglot_images_evaluation_*.npz"))) == 1
    with pytest.raises(OmniglotDataError, match="matches no known copy"):
        load_omniglot("images_evaluation", root, verify=True)
