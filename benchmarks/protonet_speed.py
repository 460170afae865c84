"""Metric-method training throughput, learnfast against easyfsl 1.5.0, in one run on one machine.

Each implementation trains on the same episodes (random 28x28 images, ``--ways``-way
``--shots``-shot, ``--queries`` queries per class) from the same initial weights: forward, loss,
backward and an Adam step per episode. Rounds alternate between the implementations, so a noisy
neighbour slows them alike; the figure is the median episodes/s over the rounds.

Rows:
  learnfast                learnfast's algorithm and backbone (one encoder call per episode).
  easyfsl                  easyfsl's method class with the same backbone layers and weight values, run
                           as a plain ``nn.Sequential`` in the default memory layout (how an easyfsl
                           user writes a Conv4).
  learnfast_bf16           the same under ``[train] precision = "bf16"`` (autocast: bfloat16
                           convolutions and matmuls, float32 weights); a different arithmetic, so it
                           has its own ratio, ``ratio_bf16_vs_easyfsl``.
  easyfsl_same_module      easyfsl's method class given learnfast's backbone module itself: what is
                           left of the gap is the episode harness, not the backbone's memory layout.

Methods: ``protonet`` (Snell et al.; cross-entropy on negative distances), ``matching`` (full context
embeddings on both sides, as easyfsl's MatchingNetworks always has them; NLL loss), ``relation``
(Conv4 feature maps 64x7x7; each library's own relation module of two conv blocks and FC 8 -> 1;
MSE against one-hot targets).

    python benchmarks/protonet_speed.py --json                      # ProtoNet, 20-way 1-shot 5 queries
    python benchmarks/protonet_speed.py --methods protonet,matching,relation --ways 5 --queries 15

easyfsl must be importable (see benchmarks/README.md); nothing is installed at run time.
"""
from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import learnfast as lf
from learnfast.algorithms import MatchingNet, ProtoNet, RelationNet
from learnfast.models import build_backbone
from learnfast.train.precision import autocast

STUBS = Path(__file__).resolve().parent / "_stubs"
ROWS = ("learnfast", "learnfast_bf16", "easyfsl", "easyfsl_same_module")
Step = Callable[[Tensor, Tensor, Tensor, Tensor], float]


def import_easyfsl():
    """``easyfsl.methods``, with the torchvision stand-in on the path when the real one is missing."""
    try:
        import torchvision  # noqa: F401
    except ImportError:
        sys.path.insert(0, str(STUBS))
    try:
        from easyfsl import methods
    except ImportError as error:
        raise SystemExit(
            f"easyfsl is not importable ({error}). Install it next to torch 2.13 with\n"
            f"    pip install --no-deps easyfsl==1.5.0\n(see benchmarks/README.md)"
        ) from None
    return methods


def plain(backbone: nn.Module) -> nn.Sequential:
    """The backbone's layers as a plain Sequential in PyTorch's default memory layout throughout.

    The weights keep their values; learnfast's channels-last layout is undone (in place) and each
    block is put back in the textbook order, conv, BN, ReLU, max-pool (learnfast pools before an
    in-place ReLU, the same function), as an easyfsl user's own Conv4 would have it.
    """
    blocks = []
    for conv, bn, *rest in backbone.features:
        blocks += [conv, bn, nn.ReLU(), *(m for m in rest if isinstance(m, nn.MaxPool2d))]
    flat = [nn.Flatten()] if isinstance(backbone, lf.Conv4) else []  # Conv4Maps returns the maps
    return nn.Sequential(*blocks, *flat).to(memory_format=torch.contiguous_format)


def learnfast_step(algorithm: lf.Algorithm, precision: str = "fp32", device: str = "cpu") -> Step:
    optimizer = torch.optim.Adam(algorithm.parameters(), lr=1e-3)

    def step(sx: Tensor, sy: Tensor, qx: Tensor, qy: Tensor) -> float:
        batch = lf.Task(sx[None], sy[None], qx[None], qy[None])
        with autocast(precision, torch.device(device).type):  # what `[train] precision` does in the trainer
            loss = algorithm.meta_loss(batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def easyfsl_step(model: nn.Module, loss_fn) -> Step:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step(sx: Tensor, sy: Tensor, qx: Tensor, qy: Tensor) -> float:
        model.process_support_set(sx, sy)
        loss = loss_fn(model(qx), qy)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def relation_mse(scores: Tensor, targets: Tensor) -> Tensor:
    return F.mse_loss(scores, F.one_hot(targets, scores.shape[-1]).to(scores.dtype))


def build(method: str, ways: int, seed: int, bf16: bool = True, device: str = "cpu") -> dict[str, Step]:
    """The rows for ``method`` (``learnfast_bf16`` only with ``bf16``), all from one seeded backbone's weights, on ``device``."""
    methods = import_easyfsl()
    torch.manual_seed(seed)
    backbone = build_backbone("conv4-maps" if method == "relation" else "conv4", (1, 28, 28), None).to(device)
    rows = {}
    for row in ROWS if bf16 else (r for r in ROWS if r != "learnfast_bf16"):
        mine = copy.deepcopy(backbone)
        theirs = plain(mine) if row == "easyfsl" else mine  # plain() converts in place: easyfsl's copy only
        torch.manual_seed(seed + 1)  # the heads (LSTMs, relation module) start alike too
        with torch.device(device):  # heads built below land beside the backbone
            precision = "bf16" if row == "learnfast_bf16" else "fp32"
            if method == "protonet":
                rows[row] = learnfast_step(ProtoNet(mine), precision, device) if row.startswith("learnfast") else easyfsl_step(methods.PrototypicalNetworks(theirs), F.cross_entropy)
            elif method == "matching":
                rows[row] = learnfast_step(MatchingNet(mine, fce=True), precision, device) if row.startswith("learnfast") else easyfsl_step(
                    methods.MatchingNetworks(theirs, feature_dimension=64), F.nll_loss)
            elif method == "relation":
                rows[row] = learnfast_step(RelationNet(mine), precision, device) if row.startswith("learnfast") else easyfsl_step(
                    methods.RelationNetworks(theirs, feature_dimension=64), relation_mse)
            else:
                raise SystemExit(f"unknown method {method!r}; choose from protonet, matching, relation")
    return rows


def episodes(n: int, ways: int, shots: int, queries: int, seed: int, device: str = "cpu") -> list[tuple[Tensor, ...]]:
    """``n`` random episodes, made on the CPU from ``seed`` (the same on every device) and moved to ``device`` once."""
    g = torch.Generator().manual_seed(seed)
    labels = lambda k: torch.arange(ways).repeat_interleave(k)
    made = [
        (torch.rand(ways * shots, 1, 28, 28, generator=g), labels(shots), torch.rand(ways * queries, 1, 28, 28, generator=g), labels(queries))
        for _ in range(n)
    ]
    return [tuple(t.to(device) for t in episode) for episode in made]


def measure(method: str, args) -> dict:
    rows = build(method, args.ways, args.seed, bf16=not args.no_bf16, device=args.device)
    data = episodes(args.episodes, args.ways, args.shots, args.queries, args.seed, args.device)
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    for step in rows.values():  # warm-up: allocator, first-call dispatch
        for episode in data[: args.warmup]:
            step(*episode)
    rates: dict[str, list[float]] = {name: [] for name in rows}
    for round_ in range(args.rounds):
        for name in list(rows) if round_ % 2 == 0 else list(rows)[::-1]:  # alternate who runs first
            step = rows[name]
            sync()
            start = time.perf_counter()
            for episode in data:
                step(*episode)
            sync()
            rates[name].append(len(data) / (time.perf_counter() - start))
    result = {name: {"episodes_per_s": statistics.median(r), "rounds": r} for name, r in rates.items()}
    base, same = result["easyfsl"]["episodes_per_s"], result["easyfsl_same_module"]["episodes_per_s"]
    result["ratio_vs_easyfsl"] = result["learnfast"]["episodes_per_s"] / base
    result["ratio_vs_easyfsl_same_module"] = result["learnfast"]["episodes_per_s"] / same
    if "learnfast_bf16" in result:
        result["ratio_bf16_vs_easyfsl"] = result["learnfast_bf16"]["episodes_per_s"] / base
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--methods", default="protonet", help="comma-separated: protonet, matching, relation")
    parser.add_argument("--ways", type=int, default=20)
    parser.add_argument("--shots", type=int, default=1)
    parser.add_argument("--queries", type=int, default=5)
    parser.add_argument("--episodes", type=int, default=10, help="episodes per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where every row runs")
    parser.add_argument("--no-bf16", action="store_true",
                        help="skip the learnfast_bf16 row (on CPUs without AVX-512 BF16 / AMX, bfloat16 is emulated and slow)")
    parser.add_argument("--keep-freed-memory", action="store_true",
                        help="call learnfast.host_memory.keep_freed_memory() first (as the learnfast CLI does); "
                             "process-wide, so every row gains")
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is visible to torch")
    torch.set_num_threads(args.threads)
    if args.keep_freed_memory:
        from learnfast.host_memory import keep_freed_memory

        keep_freed_memory()
    import_easyfsl()
    import easyfsl

    report = {
        "setting": {k: getattr(args, k) for k in ("ways", "shots", "queries", "episodes", "rounds", "threads", "device", "keep_freed_memory")},
        "versions": {"torch": torch.__version__, "learnfast": lf.__version__, "easyfsl": getattr(easyfsl, "__version__", "1.5.0")},
        "methods": {},
    }
    for method in args.methods.split(","):
        report["methods"][method] = measure(method.strip(), args)
    if args.json:
        print(json.dumps(report))
        return
    print(f"training episodes/s, {args.ways}-way {args.shots}-shot {args.queries} queries, {args.threads} thread(s), median of {args.rounds} rounds")
    for method, r in report["methods"].items():
        cells = "  ".join(f"{name} {r[name]['episodes_per_s']:.2f}" for name in ROWS if name in r)
        bf16 = f", bf16 {r['ratio_bf16_vs_easyfsl']:.2f}x" if "ratio_bf16_vs_easyfsl" in r else ""
        print(f"{method:9s} {cells}  ratio {r['ratio_vs_easyfsl']:.2f}x (same module {r['ratio_vs_easyfsl_same_module']:.2f}x{bf16})")


if __name__ == "__main__":
    main()
