"""MAML meta-training throughput, learnfast against learn2learn 0.2.0 and higher 0.2.1, in one run.

Setting (defaults): MAML 5-way 1-shot, 15 queries per class, meta-batch 32, one inner SGD step of
lr 0.4, cross-entropy, learnfast's Conv4 with max-pool (random 28x28 one-channel images). Every
implementation gets the same model weights and the same batch, and computes the meta-gradient of
the mean query loss into the model's ``.grad``.

Rows:
  learnfast           the algorithm's default, ``strategy="auto"`` (the row says what it chose).
  learnfast:<name>    each other learnfast strategy (``loop``, ``vmap``...; ``--impls`` picks).
  learn2learn         ``l2l.algorithms.MAML``: clone, adapt, query loss backward, task by task.
  higher              ``higher.innerloop_ctx`` with ``torch.optim.SGD``, task by task; first order
                      passes the inner gradients through ``grad_callback=detach``.

Each row runs in its own worker process, so peak memories do not mix: ``peak_rss_mb`` is the
worker's peak resident memory above what it held once the model and batch were built (Linux: the
high-water mark is reset there through ``/proc/self/clear_refs``; on CUDA, ``peak_cuda_mb`` is
allocated memory above the same point). Workers start together; the
parent then asks them in turn for one meta-batch each, round after round, so a noisy neighbour
slows every row alike. ``tasks_per_s`` is ``tasks / median`` over ``--repeats`` rounds after one
warm-up call (``first_call_s``, reported apart). ``max_abs_grad_diff`` is the largest difference
of any meta-gradient entry from a float64 reference loop (plain ``torch.autograd`` on the same
weights and batch, cast to float64). ``ratio_vs_learn2learn`` is the median over rounds of
learn2learn's time for the meta-batch divided by the row's time in the same round (rounds run in
alternating order), which follows a changing load better than a ratio of medians.

    python benchmarks/maml_speed.py --json                 # second order, 1 step
    python benchmarks/maml_speed.py --json --order 1
    python benchmarks/maml_speed.py --json --steps 5

learn2learn and higher must be importable (see benchmarks/README.md); nothing is installed here.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

import learnfast as lf
from learnfast.algorithms.strategies import STRATEGIES
from learnfast.host_memory import keep_freed_memory

STUBS = Path(__file__).resolve().parent / "_stubs"
PEERS = ("learn2learn", "higher")
INSTALL = ("    pip install --no-deps learn2learn==0.2.0 higher==0.2.1\n"
           "(learn2learn needs its Cython sources regenerated first; the exact commands are in benchmarks/README.md)")
Step = Callable[[], None]


# -- the problem, built the same way in every worker -------------------------------------------
def build_problem(args: argparse.Namespace) -> tuple[nn.Module, lf.Task]:
    """Same seed -> same Conv4 weights and the same batch in every process."""
    torch.manual_seed(args.seed)
    model = lf.Conv4(in_channels=1, hidden=64, out_features=args.ways).to(args.device)
    g = torch.Generator().manual_seed(args.seed)
    shape = (1, 28, 28)
    support_x = torch.randn(args.tasks, args.ways * args.shots, *shape, generator=g)
    query_x = torch.randn(args.tasks, args.ways * args.queries, *shape, generator=g)
    support_y = torch.arange(args.ways).repeat_interleave(args.shots).expand(args.tasks, -1)
    query_y = torch.arange(args.ways).repeat_interleave(args.queries).expand(args.tasks, -1)
    return model, lf.Task(support_x, support_y, query_x, query_y).to(args.device)


def import_peer(name: str):
    """``learn2learn`` or ``higher``; the torchvision stand-in goes on the path only when the real one is missing."""
    try:
        import torchvision  # noqa: F401
    except ImportError:
        sys.path.insert(0, str(STUBS))
    try:
        return __import__(name)
    except ImportError as error:
        raise SystemExit(f"{name} is not importable ({error}). Install the peers next to torch 2.13 with\n{INSTALL}") from None


def zero_grads(model: nn.Module) -> None:
    for p in model.parameters():
        p.grad = None


def learnfast_step(model: nn.Module, batch: lf.Task, args: argparse.Namespace, strategy: str) -> tuple[Step, str]:
    algorithm = lf.MAML(model, inner_lr=args.inner_lr, inner_steps=args.steps, first_order=args.order == 1, strategy=strategy)

    def step() -> None:
        zero_grads(model)
        algorithm.meta_loss(batch).loss.backward()

    return step, algorithm.execution_strategy(batch)


def learn2learn_step(model: nn.Module, batch: lf.Task, args: argparse.Namespace) -> Step:
    l2l = import_peer("learn2learn")
    maml = l2l.algorithms.MAML(model, lr=args.inner_lr, first_order=args.order == 1)

    def step() -> None:
        zero_grads(model)
        for t in range(batch.batch_size):
            learner = maml.clone()
            for _ in range(args.steps):
                learner.adapt(F.cross_entropy(learner(batch.support_x[t]), batch.support_y[t]))
            (F.cross_entropy(learner(batch.query_x[t]), batch.query_y[t]) / batch.batch_size).backward()

    return step


def higher_step(model: nn.Module, batch: lf.Task, args: argparse.Namespace) -> Step:
    higher = import_peer("higher")
    inner_optimizer = torch.optim.SGD(model.parameters(), lr=args.inner_lr)
    callback = (lambda grads: [g.detach() for g in grads]) if args.order == 1 else None

    def step() -> None:
        zero_grads(model)
        for t in range(batch.batch_size):
            with higher.innerloop_ctx(model, inner_optimizer, copy_initial_weights=False) as (fmodel, diffopt):
                for _ in range(args.steps):
                    diffopt.step(F.cross_entropy(fmodel(batch.support_x[t]), batch.support_y[t]), grad_callback=callback)
                (F.cross_entropy(fmodel(batch.query_x[t]), batch.query_y[t]) / batch.batch_size).backward()

    return step


def reference_gradient(model: nn.Module, batch: lf.Task, args: argparse.Namespace) -> dict[str, Tensor]:
    """The meta-gradient by a plain float64 autograd loop, independent of every implementation measured."""
    model = model.double()
    batch = batch.to(dtype=torch.float64)
    names = [k for k, _ in model.named_parameters()]
    theta = [p for _, p in model.named_parameters()]
    loss_at = lambda weights, x, y: F.cross_entropy(functional_call(model, dict(zip(names, weights)), (x,)), y)
    zero_grads(model)
    for t in range(batch.batch_size):
        fast = theta
        for _ in range(args.steps):
            grads = torch.autograd.grad(loss_at(fast, batch.support_x[t], batch.support_y[t]), fast, create_graph=args.order == 2)
            fast = [w - args.inner_lr * g for w, g in zip(fast, grads)]
        (loss_at(fast, batch.query_x[t], batch.query_y[t]) / batch.batch_size).backward()
    return {k: p.grad.detach().cpu() for k, p in model.named_parameters()}


# -- worker process ------------------------------------------------------------------------------
def status_mb(field: str) -> float | None:
    """``VmRSS`` / ``VmHWM`` of this process from ``/proc`` (Linux), in MiB; ``None`` elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def start_peak(args: argparse.Namespace) -> float:
    """Starts counting the peak here; returns the memory in use now, the baseline the peak is taken above.

    On Linux the resident high-water mark is reset (``/proc/self/clear_refs``), so a transient peak
    while importing or building does not hide the measured one; elsewhere ``ru_maxrss`` is used.
    """
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated() / 2**20
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return status_mb("VmRSS")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_mb(args: argparse.Namespace) -> float:
    if args.device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return status_mb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def worker(args: argparse.Namespace) -> None:
    """Builds one implementation, then answers the parent's commands on stdin with one JSON line each."""
    torch.set_num_threads(args.threads)
    if args.keep_freed_memory:
        keep_freed_memory()
    model, batch = build_problem(args)
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    info: dict = {}
    if args.worker.startswith("learnfast"):
        strategy = args.worker.partition(":")[2] or "auto"
        step, info["strategy"] = learnfast_step(model, batch, args, strategy)
    elif args.worker == "learn2learn":
        step = learn2learn_step(model, batch, args)
    else:
        step = higher_step(model, batch, args)
    baseline = start_peak(args)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        command = line.split()
        if command[0] == "time":
            sync()
            start = time.perf_counter()
            step()
            sync()
            answer = {"seconds": time.perf_counter() - start}
            if len(command) > 1:  # the first call: also check the meta-gradient against the reference
                reference = torch.load(command[1], weights_only=True)
                answer["max_abs_grad_diff"] = max(
                    (p.grad.detach().double().cpu() - reference[k]).abs().max().item() for k, p in model.named_parameters())
        elif command[0] == "report":
            answer = {"peak_mb": peak_mb(args) - baseline, **info}
        else:
            return
        print(json.dumps(answer), flush=True)


# -- parent ----------------------------------------------------------------------------------------
class Worker:
    def __init__(self, name: str, args: argparse.Namespace) -> None:
        self.name = name
        command = [sys.executable, __file__, "--worker", name] + forwarded(args)
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)

    def ask(self, command: str) -> dict:
        if command:
            self.process.stdin.write(command + "\n")
            self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit(f"the {self.name} worker stopped (exit code {self.process.wait()}); its error is above")
        return json.loads(line)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.write("quit\n")
            self.process.stdin.close()
            self.process.wait()


def forwarded(args: argparse.Namespace) -> list[str]:
    keys = ("order", "steps", "device", "tasks", "threads", "seed", "ways", "shots", "queries", "inner_lr")
    flags = ["--keep-freed-memory"] if args.keep_freed_memory else []
    return [item for k in keys for item in (f"--{k.replace('_', '-')}", str(getattr(args, k)))] + flags


def measure(args: argparse.Namespace) -> dict:
    names = args.impls.split(",")
    for name in names:
        if name in PEERS:
            import_peer(name)  # fail before any work, with the install hint
        elif name.startswith("learnfast") and name.partition(":")[2] not in ("", *STRATEGIES):
            raise SystemExit(f"unknown implementation {name!r}; learnfast strategies are {STRATEGIES}")
    model, batch = build_problem(args)
    reference = reference_gradient(model, batch, args)
    with tempfile.TemporaryDirectory() as tmp:
        reference_path = str(Path(tmp) / "reference.pt")
        torch.save(reference, reference_path)
        workers = [Worker(name, args) for name in names]
        try:
            for w in workers:
                w.ask("")  # ready
            results = {}
            for w in workers:  # warm-up, one at a time
                first = w.ask(f"time {reference_path}")
                results[w.name] = {"first_call_s": round(first["seconds"], 3), "max_abs_grad_diff": first["max_abs_grad_diff"], "seconds": []}
            for round_ in range(args.repeats):
                for w in workers if round_ % 2 == 0 else workers[::-1]:  # alternate who runs first
                    results[w.name]["seconds"].append(w.ask("time")["seconds"])
            for w in workers:
                report = w.ask("report")
                row = results[w.name]
                if "strategy" in report:
                    row["strategy"] = report["strategy"]
                row["tasks_per_s"] = round(args.tasks / statistics.median(row["seconds"]), 3)
                row["peak_cuda_mb" if args.device == "cuda" else "peak_rss_mb"] = round(report["peak_mb"], 1)
                row["seconds"] = [round(s, 3) for s in row["seconds"]]
        finally:
            for w in workers:
                w.close()
    base = results.get("learn2learn", {}).get("seconds")
    for row in results.values():
        # paired by round: both rows ran minutes apart at most, under the same neighbours
        row["ratio_vs_learn2learn"] = round(statistics.median(b / s for b, s in zip(base, row["seconds"])), 3) if base else None
    return {
        "setting": {"algorithm": "MAML", "order": args.order, "inner_steps": args.steps, "inner_lr": args.inner_lr,
                    "ways": args.ways, "shots": args.shots, "queries_per_class": args.queries, "meta_batch": args.tasks,
                    "backbone": "learnfast.models.Conv4(1, 64, ways), max-pool", "loss": "cross_entropy"},
        "device": args.device, "threads": args.threads, "keep_freed_memory": args.keep_freed_memory, "torch": torch.__version__, "repeats": args.repeats,
        "reference": "float64 plain autograd loop, same weights and batch",
        "max_abs_reference_grad": max(v.abs().max().item() for v in reference.values()),
        "implementations": results,
    }


def table(result: dict) -> str:
    s = result["setting"]
    lines = [f"MAML order {s['order']}, {s['inner_steps']} inner step(s), {s['ways']}-way {s['shots']}-shot {s['queries_per_class']} queries, "
             f"meta-batch {s['meta_batch']}, {result['device']}, {result['threads']} thread(s), median of {result['repeats']}",
             f"{'implementation':<20} {'strategy':<9} {'tasks/s':>8} {'x l2l':>6} {'peak MB':>8} {'max|dgrad|':>11} {'first call s':>12}"]
    for name, row in result["implementations"].items():
        ratio = f"{row['ratio_vs_learn2learn']:.2f}" if row["ratio_vs_learn2learn"] else "-"
        peak = row.get("peak_rss_mb", row.get("peak_cuda_mb"))
        lines.append(f"{name:<20} {row.get('strategy', ''):<9} {row['tasks_per_s']:>8.2f} {ratio:>6} {peak:>8.0f} "
                     f"{row['max_abs_grad_diff']:>11.2e} {row['first_call_s']:>12.2f}")
    lines.append(f"(gradient differences against a {result['reference']}; largest reference entry {result['max_abs_reference_grad']:.3g})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--order", type=int, choices=(1, 2), default=2, help="1: first-order MAML, 2: second order")
    parser.add_argument("--steps", type=int, default=1, help="inner SGD steps")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--tasks", type=int, default=32, help="meta-batch size")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds after the warm-up call")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads of every row")
    parser.add_argument("--impls", default=None,
                        help="comma-separated rows: learnfast, learnfast:<strategy>, learn2learn, higher "
                             "(default: all; learnfast:vmap only at one inner step, where it already needs ~4.5 GB)")
    parser.add_argument("--keep-freed-memory", action="store_true",
                        help="every row's process keeps freed memory for reuse (learnfast.host_memory; glibc)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ways", type=int, default=5)
    parser.add_argument("--shots", type=int, default=1)
    parser.add_argument("--queries", type=int, default=15, help="queries per class")
    parser.add_argument("--inner-lr", type=float, default=0.4)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is visible to torch")
    if args.worker:
        return worker(args)
    if args.impls is None:
        args.impls = ",".join(["learnfast", "learnfast:loop", *(["learnfast:vmap"] if args.steps == 1 else []), *PEERS])
    result = measure(args)
    print(json.dumps(result, indent=1) if args.json else table(result))


if __name__ == "__main__":
    main()
