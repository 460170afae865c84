"""Shared fixtures: single-threaded torch, the Omniglot data root, tiny task builders."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import learnfast as lf

torch.set_num_threads(1)

REPO_ROOT = Path(__file__).resolve().parent.parent
OMNIGLOT_ZIPS = ("images_background.zip", "images_evaluation.zip")


def omniglot_root() -> Path:
    """``$LEARNFAST_DATA`` if set, else ``../shared/data`` next to the repository."""
    env = os.environ.get("LEARNFAST_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


def skip_without_simulators(dataset: str) -> None:
    """Skips the test where ``dataset`` is a meta-RL family whose simulator packages (the learnfast[rl]
    extra: gymnasium, mujoco, metaworld) are not installed, as in CI's core install."""
    from learnfast.rl import RL_DATASETS, task_family

    if dataset in RL_DATASETS:
        for module in task_family(dataset).requires:
            pytest.importorskip(module)


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = omniglot_root()
    missing = [z for z in OMNIGLOT_ZIPS if not (root / "omniglot" / z).is_file()]
    if missing:
        pytest.skip(f"Omniglot zips {missing} not found under {root / 'omniglot'}; set LEARNFAST_DATA")
    return root


@pytest.fixture
def fresh_cache(tmp_path_factory, monkeypatch) -> Path:
    """An empty ``LEARNFAST_CACHE`` for tests that exercise the decode cache."""
    cache = tmp_path_factory.mktemp("learnfast_cache")
    monkeypatch.setenv("LEARNFAST_CACHE", str(cache))
    return cache


def blob_tasks(batch_size: int, generator: torch.Generator, ways: int = 3, shots: int = 2, queries: int = 4,
               dim: int = 8, spread: float = 0.3, dtype: torch.dtype = torch.float32) -> lf.Task:
    """Few-shot Gaussian blobs: each task draws ``ways`` random class centres; items are centre + noise.

    Support is class-major (label ``i // shots``), query likewise, as the EpisodeSampler produces.
    """
    centres = torch.randn(batch_size, ways, 1, dim, generator=generator, dtype=dtype) * 2.0
    n = shots + queries
    points = centres + spread * torch.randn(batch_size, ways, n, dim, generator=generator, dtype=dtype)
    labels = torch.arange(ways).view(1, ways, 1).expand(batch_size, ways, n)
    return lf.Task(
        points[:, :, :shots].reshape(batch_size, ways * shots, dim),
        labels[:, :, :shots].reshape(batch_size, ways * shots),
        points[:, :, shots:].reshape(batch_size, ways * queries, dim),
        labels[:, :, shots:].reshape(batch_size, ways * queries),
    )


def image_tasks(batch_size: int, generator: torch.Generator, ways: int = 3, shots: int = 2, queries: int = 2,
                size: int = 28, dtype: torch.dtype = torch.float64) -> lf.Task:
    """Random 1-channel images with class-major labels (values need not be learnable)."""
    sx = torch.randn(batch_size, ways * shots, 1, size, size, generator=generator, dtype=dtype)
    qx = torch.randn(batch_size, ways * queries, 1, size, size, generator=generator, dtype=dtype)
    sy = torch.arange(ways).repeat_interleave(shots).expand(batch_size, -1)
    qy = torch.arange(ways).repeat_interleave(queries).expand(batch_size, -1)
    return lf.Task(sx, sy, qx, qy)


def bn_conv4(strided: bool = True, seed: int = 0, out_features: int = 3) -> torch.nn.Module:
    """A tiny float64 Conv4 whose BatchNorm affine parameters are non-trivial (default init is 1 and 0)."""
    import learnfast as lf

    torch.manual_seed(seed)
    model = lf.Conv4(in_channels=1, hidden=4, out_features=out_features, strided=strided).double()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return model


def tiny_mlp(seed: int = 0) -> torch.nn.Module:
    """A float64 MLP 8 -> 8 -> 3."""
    import learnfast as lf

    torch.manual_seed(seed)
    return lf.MLP(in_features=8, hidden=(8,), out_features=3).double()


def assert_no_leak_between_tasks(algorithm, batch) -> None:
    """Changing task 1 of a 3-task batch changes task 1's outputs and leaves tasks 0 and 2 exactly as they were."""
    import learnfast as lf

    before = algorithm(batch)
    changed = lf.Task(batch.support_x.clone(), batch.support_y, batch.query_x.clone(), batch.query_y)
    changed.support_x[1] = changed.support_x[1] * 5 + 3
    changed.query_x[1] = -changed.query_x[1]
    after = algorithm(changed)
    assert torch.allclose(after[0], before[0], atol=1e-12, rtol=0)
    assert torch.allclose(after[2], before[2], atol=1e-12, rtol=0)
    assert not torch.allclose(after[1], before[1], atol=1e-6)
