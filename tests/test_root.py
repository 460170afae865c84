"""The data-root rule (--data-root / root=, then LEARNFAST_DATA, then ./data, ../shared/data) and the cache folder."""
from pathlib import Path

import pytest

from learnfast.data import OmniglotDataError, data_root, load_omniglot
from learnfast.data.root import DATA_SEARCH, cache_dir, data_candidates, where_looked


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """An empty current directory ``<tmp>/work/main`` beside ``<tmp>/work/shared``, with LEARNFAST_DATA unset."""
    main = tmp_path / "work" / "main"
    main.mkdir(parents=True)
    main = main.resolve()  # the current directory as the OS reports it (no symlinks)
    monkeypatch.chdir(main)
    monkeypatch.delenv("LEARNFAST_DATA", raising=False)
    return main.parent


def make(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_search_order_is_documented():
    assert DATA_SEARCH == (Path("data"), Path("../shared/data"))


def test_explicit_root_wins_and_is_used_as_given(workdir, monkeypatch):
    make(workdir / "main" / "data" / "omniglot")
    monkeypatch.setenv("LEARNFAST_DATA", str(workdir / "env"))
    assert data_root("/some/where") == Path("/some/where")  # an explicit root wins over the env and the search
    assert data_root("~/omni") == Path.home() / "omni"
    assert data_candidates("/some/where") == [Path("/some/where")]


def test_env_is_used_as_given_without_fallback(workdir, monkeypatch):
    make(workdir / "main" / "data" / "omniglot")
    make(workdir / "shared" / "data" / "omniglot")
    monkeypatch.setenv("LEARNFAST_DATA", str(workdir / "env"))  # holds no omniglot/: still used, no fallback
    assert data_root() == workdir / "env"
    assert data_candidates() == [workdir / "env"]
    monkeypatch.setenv("LEARNFAST_DATA", "")  # empty counts as unset
    assert data_root() == workdir / "main" / "data"


def test_fallback_prefers_local_data_then_shared(workdir):
    local, shared = workdir / "main" / "data", workdir / "shared" / "data"
    assert data_candidates() == [local, shared]  # absolute, ".." normalised
    assert data_root() == local  # nothing anywhere: the first place, for the reader's error
    make(shared / "omniglot")
    assert data_root() == shared
    make(local)  # ./data without omniglot/ does not count
    assert data_root() == shared
    make(local / "omniglot")
    assert data_root() == local


def test_fallback_is_per_dataset(workdir):
    make(workdir / "main" / "data" / "text")
    make(workdir / "shared" / "data" / "omniglot")
    assert data_root(dataset="text") == workdir / "main" / "data"
    assert data_root(dataset="omniglot") == workdir / "shared" / "data"
    assert data_root(dataset="movielens") == workdir / "main" / "data"


def test_where_looked_lists_every_place_in_order(workdir):
    local, shared = workdir / "main" / "data", workdir / "shared" / "data"
    message = where_looked(dataset="omniglot")
    assert f"./data = {local} (no omniglot/ there)" in message
    assert f"../shared/data = {shared} (no omniglot/ there)" in message
    assert message.index(str(local)) < message.index(str(shared))
    assert "none holds omniglot/" in message and "LEARNFAST_DATA" in message and "--data-root" in message
    make(shared / "omniglot")
    assert f"{shared} (holds omniglot/, so it is used)" in where_looked(dataset="omniglot")


def test_where_looked_for_a_given_root(workdir, monkeypatch):
    assert "/x/y was given by --data-root / root=" in where_looked("/x/y")
    monkeypatch.setenv("LEARNFAST_DATA", "/from/env")
    message = where_looked()
    assert "/from/env was given by LEARNFAST_DATA=/from/env" in message and "no other place is searched" in message


def test_omniglot_error_lists_every_place_and_the_fix(workdir):
    with pytest.raises(OmniglotDataError) as info:
        load_omniglot("images_background")
    message = str(info.value)
    assert str(workdir / "main" / "data" / "omniglot" / "images_background.zip") in message
    assert str(workdir / "main" / "data") in message and str(workdir / "shared" / "data") in message
    assert "none holds omniglot/" in message
    assert "Put the official Omniglot zips" in message and "LEARNFAST_DATA / --data-root" in message


def test_omniglot_reader_uses_the_fallback(workdir):
    """With no root given, the reader opens ../shared/data/omniglot/ (here a broken zip, so it fails at once, naming it)."""
    bad = make(workdir / "shared" / "data" / "omniglot") / "images_background.zip"
    bad.write_bytes(b"not a zip" * 10)
    with pytest.raises(OmniglotDataError, match="not a readable zip") as info:
        load_omniglot("images_background", verify=False)
    assert str(bad) in str(info.value)


def test_omniglot_error_with_env_names_only_that_place(workdir, monkeypatch):
    make(workdir / "shared" / "data" / "omniglot")
    monkeypatch.setenv("LEARNFAST_DATA", str(workdir / "env"))
    with pytest.raises(OmniglotDataError, match="no other place is searched") as info:
        load_omniglot("images_evaluation")
    assert str(workdir / "env" / "omniglot" / "images_evaluation.zip") in str(info.value)
    assert str(workdir / "shared") not in str(info.value)


def test_cache_dir_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("LEARNFAST_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c" and (tmp_path / "c").is_dir()
