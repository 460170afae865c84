"""Devices: nothing in the training step's hot path is pinned to the CPU, CUDA runs where there is one,
and a checkpoint written anywhere loads on any device."""
import re

import pytest
import torch

import learnfast as lf
from conftest import REPO_ROOT
from learnfast.cli import main
from learnfast.train.config import ConfigError
from learnfast.train.distributed import resolve_device

SRC = REPO_ROOT / "src" / "learnfast"
HOT_PATH = ["tasks.py", "episodes.py", "functional.py", "inner.py", "implicit.py", "batchnorm.py", "train/trainer.py",
            "train/optim.py", "train/precision.py", *[f"algorithms/{p.name}" for p in (SRC / "algorithms").glob("*.py")]]
PINNED = re.compile(r"""\.cpu\(\)|torch\.device\(\s*["']cpu["']\s*\)|device\s*=\s*["']cpu["']|\.to\(\s*["']cpu["']\s*\)""")
ALLOWED = {  # host copies of evaluation figures, not of the training step
    ("algorithms/mann.py", "hit = (out.logits.argmax(-1) == out.labels).double().flatten().cpu()"),
    ("algorithms/mann.py", "index = out.instances.flatten().clamp(max=top + 1).cpu()"),
    ("train/precision.py", 'def autocast(precision: str, device_type: str = "cpu") -> ContextManager:'),
    ("train/trainer.py", 'device: str | torch.device = "cpu",'),
}


def test_nothing_in_the_hot_path_is_pinned_to_the_cpu():
    found = [(name, line.strip()) for name in HOT_PATH for line in (SRC / name).read_text().splitlines()
             if PINNED.search(line) and (name, line.strip()) not in ALLOWED]
    assert not found, f"CPU-pinned code in the training step's path: {found}"


def test_device_names():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError, match="not known"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device"):
            resolve_device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_train_and_eval_on_cuda_then_load_on_cpu(tmp_path, capsys):
    args = ["--algorithm", "maml", "--dataset", "sinusoid", "--backbone", "mlp", "--shots", "5", "--queries", "5",
            "--meta-batch", "4", "--iterations", "4", "--val-every", "2", "--val-episodes", "4", "--set", "model.hidden=8",
            "--no-progress", "--device", "cuda", "--set", "eval.episodes=5"]
    assert main(["train", *args, "--out", str(tmp_path / "r")]) == 0
    assert main(["eval", str(tmp_path / "r" / "best.safetensors"), "--device", "cuda", "--json", "--no-progress"]) == 0
    capsys.readouterr()
    model = lf.load(tmp_path / "r" / "best.safetensors", device="cpu")
    assert next(model.parameters()).device.type == "cpu"


def test_rank_shares_of_tasks_and_episodes_are_disjoint_and_cover_everything():
    from learnfast.protocol import fixed_episodes
    from learnfast.train.distributed import Ranks, shard_tasks
    from conftest import blob_tasks

    batch = blob_tasks(6, torch.Generator().manual_seed(0))
    shares = [shard_tasks(batch, Ranks(rank, 3)) for rank in range(3)]
    assert all(share.batch_size == 2 for share in shares)
    torch.testing.assert_close(torch.cat([s.support_x for s in shares]), batch.support_x)
    source = type("Source", (), {"sample": lambda self, n, g: blob_tasks(n, g)})()
    whole = torch.cat([t.support_x for t in fixed_episodes(source, 7, 0, 1)])
    parts = {rank: [t.support_x for t in fixed_episodes(source, 7, 0, 1, range(rank, 7, 2))] for rank in range(2)}
    interleaved = [parts[i % 2][i // 2] for i in range(7)]
    torch.testing.assert_close(torch.cat(interleaved), whole)  # the same fixed set, whatever the number of ranks
