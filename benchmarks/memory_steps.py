"""Peak memory of one MAML meta-gradient against the number of inner steps, for each memory option.

Setting: Conv4 (strided, MAML's Omniglot network, or ``--backbone conv4`` for the max-pool one),
5-way 1-shot, 15 queries per class, meta-batch 4, float32 on CPU, the ``loop`` strategy (the only
one ``memory="checkpoint"`` runs under), random 28x28 images. One measurement is one
``meta_loss(batch).loss.backward()`` after a warm-up meta-gradient (one task, one step), so
one-time allocations (oneDNN's, torch.func's) are not charged to it.

Peak memory is measured two ways:

``tensor_peak_mib``  torch's profiler (``profile_memory=True``), on a second run in the same
    subprocess after the one below: every tensor allocation and free during the meta-gradient,
    in order; the figure is the peak of their running sum, i.e. the most tensor memory alive at
    once beyond what was alive before. Exact and deterministic.
``rss_peak_mib``     what the operating system sees: each configuration runs in a fresh
    subprocess (no profiler); just before the meta-gradient the resident-set high-water mark is
    reset (``5 > /proc/self/clear_refs``), and the figure is ``VmHWM`` after it minus ``VmRSS``
    before it (``/proc/self/status``). glibc's mmap threshold is pinned
    (``MALLOC_MMAP_THRESHOLD_``) so freed large blocks go back to the system instead of staying
    resident; allocator caching still adds some noise. (``ru_maxrss`` is no use here: Linux
    carries it over from the parent process across ``exec``.)

    python benchmarks/memory_steps.py                 # table
    python benchmarks/memory_steps.py --json          # one JSON object
    python benchmarks/memory_steps.py --steps 1,5 --memory second-order,implicit
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

MEMORY = ("second-order", "first-order", "checkpoint", "implicit")
MMAP_THRESHOLD = str(128 * 1024)
METHODS = {
    "tensor_peak_mib": "torch.profiler(profile_memory=True): peak of the running sum of tensor allocations and frees "
                       "during one meta-gradient",
    "rss_peak_mib": "VmHWM after one meta-gradient minus VmRSS before it (high-water mark reset through "
                    f"/proc/self/clear_refs), in a fresh subprocess with MALLOC_MMAP_THRESHOLD_={MMAP_THRESHOLD}",
}


def status_mib(field: str) -> float:
    """``VmRSS`` / ``VmHWM`` of this process, from ``/proc/self/status`` (kB there)."""
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith(field + ":"))
    return int(line.split()[1]) / 1024


def reset_high_water_mark() -> None:
    """Sets ``VmHWM`` to the current ``VmRSS`` (Linux >= 4.0)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def setup(memory: str, steps: int, args: argparse.Namespace):
    """A warmed-up ``MAML`` with ``steps`` inner steps and the meta-batch (``Task``) it will be measured on."""
    import torch

    import learnfast as lf

    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    ways, shots, queries, batch_size = 5, 1, 15, args.meta_batch
    batch = lf.Task(
        torch.rand(batch_size, ways * shots, 1, 28, 28, generator=g),
        torch.arange(ways).repeat_interleave(shots).expand(batch_size, -1),
        torch.rand(batch_size, ways * queries, 1, 28, 28, generator=g),
        torch.arange(ways).repeat_interleave(queries).expand(batch_size, -1),
    )

    def make(inner_steps: int):
        torch.manual_seed(0)
        model = lf.Conv4(out_features=ways, strided=args.backbone == "conv4-strided")
        implicit = {"implicit_lambda": args.implicit_lambda, "cg_steps": args.cg_steps} if memory == "implicit" else {}
        return lf.MAML(model, inner_lr=0.4, inner_steps=inner_steps, memory=memory, **implicit)

    make(1).meta_loss(lf.Task(*(field[:1] for field in batch))).loss.backward()  # warm-up: one task, one step
    return make(steps), batch


def tensor_peak(memory: str, steps: int, args: argparse.Namespace) -> float:
    """Peak live tensor memory (MiB) of one meta-gradient, from the profiler's allocation events."""
    from torch.profiler import ProfilerActivity, profile

    maml, batch = setup(memory, steps, args)
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        maml.meta_loss(batch).loss.backward()
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events() if e.name() == "[memory]")
    alive = peak = 0
    for _, nbytes in events:  # allocations are positive, frees negative
        alive += nbytes
        peak = max(peak, alive)
    return round(peak / 2**20, 1)


def resident_peak(memory: str, steps: int, args: argparse.Namespace) -> dict:
    """The extra resident memory and the time of one meta-gradient (run it in a fresh process)."""
    maml, batch = setup(memory, steps, args)
    reset_high_water_mark()
    before = status_mib("VmRSS")
    start = time.perf_counter()
    maml.meta_loss(batch).loss.backward()
    seconds = time.perf_counter() - start
    return {"rss_peak_mib": round(status_mib("VmHWM") - before, 1), "seconds": round(seconds, 3)}


def run_child(memory: str, steps: int, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--child", memory, str(steps), "--meta-batch", str(args.meta_batch),
               "--backbone", args.backbone, "--threads", str(args.threads),
               "--implicit-lambda", str(args.implicit_lambda), "--cg-steps", str(args.cg_steps)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MALLOC_MMAP_THRESHOLD_": MMAP_THRESHOLD}
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"measuring memory={memory} steps={steps} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(results: list[dict], steps: list[int], memories: list[str]) -> str:
    by = {(r["memory"], r["steps"]): r for r in results}
    width = 10
    header = f"{'memory':<14}" + "".join(f"{f'{s} steps':>{width}}" for s in steps)
    lines = []
    for metric, title in (("tensor_peak_mib", "peak tensor memory, MiB (profiler)"),
                          ("rss_peak_mib", "peak extra resident memory, MiB (VmHWM)")):
        lines += [title, header + f"{f'{steps[-1]}/{steps[0]}':>{width}}"]
        for memory in memories:
            row = [by[memory, s][metric] for s in steps]
            growth = f"{row[-1] / row[0]:.1f}x" if row[0] > 0 else "-"
            lines.append(f"{memory:<14}" + "".join(f"{v:>{width}.1f}" for v in row) + f"{growth:>{width}}")
        lines.append("")
    lines += ["seconds per meta-gradient (no profiler)", header]
    for memory in memories:
        lines.append(f"{memory:<14}" + "".join(f"{by[memory, s]['seconds']:>{width}.2f}" for s in steps))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--steps", default="1,5,10,20", help="comma-separated inner step counts")
    parser.add_argument("--memory", default=",".join(MEMORY), help=f"comma-separated options from {MEMORY}")
    parser.add_argument("--meta-batch", type=int, default=4)
    parser.add_argument("--backbone", choices=("conv4-strided", "conv4"), default="conv4-strided")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--implicit-lambda", type=float, default=1.0)
    parser.add_argument("--cg-steps", type=int, default=5)
    parser.add_argument("--child", nargs=2, metavar=("MEMORY", "STEPS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:  # resident memory first, while nothing else has run; then the profiled run
        memory, n = args.child[0], int(args.child[1])
        print(json.dumps({**resident_peak(memory, n, args), "tensor_peak_mib": tensor_peak(memory, n, args)}))
        return
    steps = [int(s) for s in args.steps.split(",")]
    memories = args.memory.split(",")
    unknown = sorted(set(memories) - set(MEMORY))
    if unknown:
        parser.error(f"unknown memory options {unknown}; choose from {MEMORY}")
    results = [{"memory": memory, "steps": s, **run_child(memory, s, args)} for memory in memories for s in steps]
    setting = {"setting": f"MAML, {args.backbone}, 5-way 1-shot, 15 queries, meta-batch {args.meta_batch}, float32, CPU, "
                          f"strategy loop, {args.threads} thread(s); implicit: lambda {args.implicit_lambda}, "
                          f"{args.cg_steps} CG steps",
               "methods": METHODS}
    if args.json:
        print(json.dumps({**setting, "results": results}, indent=1))
    else:
        print(setting["setting"])
        print("\n".join(f"  {k}: {v}" for k, v in METHODS.items()) + "\n")
        print(table(results, steps, memories))


if __name__ == "__main__":
    main()
