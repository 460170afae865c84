"""How ``per_task`` should run tasks on this device: ``vmap`` over tasks against one call per task.

``per_task(fn, x)`` applies an encoder to each task's items separately (BatchNorm statistics per
task) for every metric and memory method. This times both ways of doing it for Conv4 (max-pool)
and Conv4Maps, forward + backward of the features of a ``(B, n, 1, 28, 28)`` meta-batch, in
alternating order, and checks that they agree. ``learnfast`` uses the loop on CPU.

    python benchmarks/per_task_speed.py            # table
    python benchmarks/per_task_speed.py --json     # one JSON object
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torch.func import vmap

from learnfast.models import Conv4, Conv4Maps

SHAPES = ((16, 55), (4, 100), (20, 20))  # (tasks, items per task): MANN 5x(10+1), Matching 20-way 5-shot, evaluation batches


def looped(encoder, x):
    return torch.stack([encoder(items) for items in x.unbind(0)])


def batched(encoder, x):
    return vmap(encoder)(x)


def seconds(fn, encoder, x) -> float:
    start = time.perf_counter()
    fn(encoder, x).square().sum().backward()
    return time.perf_counter() - start


def measure(name: str, encoder: torch.nn.Module, tasks: int, items: int, repeats: int, device: str) -> dict:
    x = torch.rand(tasks, items, 1, 28, 28, device=device)
    with torch.no_grad():
        agreement = (looped(encoder, x) - batched(encoder, x)).abs().max().item()
    times = {"vmap": [], "loop": []}
    for fn in (batched, looped):  # warm-up
        seconds(fn, encoder, x)
    for r in range(repeats):
        for fn in ((batched, looped) if r % 2 == 0 else (looped, batched)):
            times["vmap" if fn is batched else "loop"].append(seconds(fn, encoder, x))
    vmap_s, loop_s = statistics.median(times["vmap"]), statistics.median(times["loop"])
    return {"backbone": name, "tasks": tasks, "items": items, "vmap_s": vmap_s, "loop_s": loop_s,
            "ratio_loop_vs_vmap": vmap_s / loop_s, "max_abs_diff": agreement}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows = [measure(name, cls().to(args.device), b, n, args.repeats, args.device)
            for name, cls in (("conv4", Conv4), ("conv4-maps", Conv4Maps)) for b, n in SHAPES]
    if args.json:
        print(json.dumps({"device": args.device, "threads": args.threads, "rows": rows}))
        return
    print(f"{'backbone':<11} {'B x n':>8} {'vmap s':>8} {'loop s':>8} {'loop speed-up':>14} {'max |diff|':>11}")
    for r in rows:
        print(f"{r['backbone']:<11} {str(r['tasks']) + ' x ' + str(r['items']):>8} {r['vmap_s']:8.3f} {r['loop_s']:8.3f} "
              f"{r['ratio_loop_vs_vmap']:13.2f}x {r['max_abs_diff']:11.1e}")


if __name__ == "__main__":
    main()
