"""Meta-training throughput of one process against `torchrun` ranks, with the thread counts that fill the machine.

Each setting trains a config twice from scratch, for ``--short`` and for ``--long`` meta-batches
(no progress bar; the one validation at the end on 10 episodes), and takes seconds per meta-batch as the difference of the two
wall times over the difference of lengths, so start-up (imports, data cache, process group) cancels
out. Settings run in alternating order, ``--rounds`` times; the figure is the median.

    python benchmarks/ranks_speed.py                                  # MAML 5-way 1-shot, meta-batch 32
    python benchmarks/ranks_speed.py --config protonet-omniglot-5w1s --meta-batch 4 --short 20 --long 60

Settings (``--settings``, comma-separated ``RANKSxTHREADS``): ``1x1`` one process, one thread;
``1x2`` one process with two threads (learnfast's ``threads`` strategy, two tasks side by side);
``2x1`` two gloo ranks of one thread, each with half of every meta-batch.
Needs the Omniglot files under ``$LEARNFAST_DATA`` (or ``--data-root``).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def command(config: str, ranks: int, threads: int, iterations: int, meta_batch: int, out: Path, data_root: str | None) -> list[str]:
    launcher = [sys.executable, "-m", "learnfast"] if ranks == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(ranks), "-m", "learnfast"]
    extra = ["--data-root", data_root] if data_root else []
    return [*launcher, "train", config, "--iterations", str(iterations), "--meta-batch", str(meta_batch), "--val-every", str(iterations),
            "--set", "train.val_episodes=10",
            "--threads", str(threads), "--no-progress", "--out", str(out), *extra]


def wall_seconds(argv: list[str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed (exit {result.returncode}):\n{result.stderr[-2000:]}")
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="maml-omniglot-5w1s")
    parser.add_argument("--meta-batch", type=int, default=32)
    parser.add_argument("--settings", default="1x1,1x2,2x1", help="comma-separated RANKSxTHREADS")
    parser.add_argument("--short", type=int, default=5, help="meta-batches of the short run")
    parser.add_argument("--long", type=int, default=25, help="meta-batches of the long run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    settings = []
    for text in args.settings.split(","):
        ranks, _, threads = text.strip().partition("x")
        if not (ranks.isdigit() and threads.isdigit()) or int(ranks) < 1 or int(threads) < 1:
            raise SystemExit(f"--settings: {text!r} is not RANKSxTHREADS, e.g. 2x1")
        if args.meta_batch % int(ranks):
            raise SystemExit(f"--settings {text}: {ranks} ranks do not divide --meta-batch {args.meta_batch}")
        settings.append((text.strip(), int(ranks), int(threads)))
    if args.long <= args.short:
        raise SystemExit("--long must be larger than --short")
    per_batch: dict[str, list[float]] = {name: [] for name, _, _ in settings}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for name, ranks, threads in settings if round_ % 2 == 0 else settings[::-1]:
                times = [wall_seconds(command(args.config, ranks, threads, n, args.meta_batch, Path(tmp) / f"{name}-{round_}-{n}", args.data_root))
                         for n in (args.short, args.long)]
                per_batch[name].append((times[1] - times[0]) / (args.long - args.short))
    rows = {name: {"s_per_meta_batch": round(statistics.median(s), 4), "rounds": [round(x, 4) for x in s]} for name, s in per_batch.items()}
    first = settings[0][0]
    for row in rows.values():
        row["speed_up_vs_" + first] = round(rows[first]["s_per_meta_batch"] / row["s_per_meta_batch"], 3)
    report = {"config": args.config, "meta_batch": args.meta_batch, "short": args.short, "long": args.long, "rows": rows}
    if args.json:
        print(json.dumps(report, indent=1))
        return
    print(f"{args.config}, meta-batch {args.meta_batch}: seconds per meta-batch (median of {args.rounds})")
    for name, row in rows.items():
        print(f"  {name:>5}  {row['s_per_meta_batch']:.4f} s   x{row['speed_up_vs_' + first]:.2f} vs {first}")


if __name__ == "__main__":
    main()
