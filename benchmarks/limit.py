"""How far from the hardware: achieved / attainable FLOP/s of MAML and ProtoNet training, learnfast and the peers.

Attainable is measured, not taken from a data sheet:
  peak             a float32 2048 x 2048 matrix product, best of 5 (the machine's practical ceiling);
  at the shapes    every FLOP-carrying operator of the training step (convolutions, their backward,
                   matrix products) replayed alone on random tensors of the same shapes and memory
                   layout, best of 5 each, summed over the step (``flops.attainable_seconds``): what the
                   step would cost if nothing but its FLOP-carrying kernels ran, each at its best speed.
FLOPs are counted from the operators the step runs (``torch.utils.flop_counter``'s formulas) and
checked against a hand count for the Conv4 (``flops.maml_second_order_flops``,
``flops.forward_backward_flops``). Achieved FLOP/s is that count over the step's measured median
time, taken by ``maml_speed.py`` and ``protonet_speed.py`` (same problems, same alternating rounds).

    python benchmarks/limit.py                       # MAML (2nd order, 1 step, meta-batch 32) and ProtoNet (20-way 1-shot)
    python benchmarks/limit.py --what maml --json

The peers (learn2learn, higher, easyfsl) must be importable: see benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import flops  # noqa: E402
import maml_speed  # noqa: E402
import protonet_speed  # noqa: E402


def row(recording: flops.Recording, attainable_s: float, seconds: float, peak: float) -> dict:
    """One implementation's FLOPs and time against the two ceilings."""
    achieved = recording.total_flops / seconds
    return {
        "gflop": round(recording.total_flops / 1e9, 4),
        "seconds": round(seconds, 4),
        "achieved_gflop_s": round(achieved / 1e9, 2),
        "attainable_at_shapes_gflop_s": round(recording.total_flops / attainable_s / 1e9, 2),
        "fraction_of_attainable_at_shapes": round(attainable_s / seconds, 3),
        "fraction_of_peak": round(achieved / peak, 3),
    }


def maml_limit(args: argparse.Namespace, peak: float) -> dict:
    problem = argparse.Namespace(order=2, steps=1, device=args.device, tasks=args.tasks, repeats=args.repeats, threads=args.threads,
                                 keep_freed_memory=False, seed=0, ways=5, shots=1, queries=15, inner_lr=0.4)
    peers = maml_speed.PEERS
    steps = {"learnfast": lambda model, batch: maml_speed.learnfast_step(model, batch, problem, "loop")[0],  # dispatch modes are per thread
             "learn2learn": lambda model, batch: maml_speed.learn2learn_step(model, batch, problem),
             "higher": lambda model, batch: maml_speed.higher_step(model, batch, problem)}
    recordings = {}
    for name in ("learnfast", *peers):
        model, batch = maml_speed.build_problem(problem)
        recordings[name] = flops.record(steps[name](model, batch))
    layers = flops.conv4_layer_flops((1, 28, 28), out_features=problem.ways)
    hand = problem.tasks * flops.maml_second_order_flops(layers, problem.ways * problem.shots, problem.ways * problem.queries)
    problem.impls = ",".join(("learnfast", *peers))
    timed = maml_speed.measure(problem)["implementations"]
    rows = {}
    for name, recording in recordings.items():
        seconds = problem.tasks / timed[name]["tasks_per_s"]
        rows[name] = row(recording, flops.attainable_seconds(recording, args.repeats), seconds, peak)
        if name == "learnfast":
            rows[name]["strategy"] = timed[name].get("strategy")
    return {"setting": "MAML second order, 1 inner step, 5-way 1-shot 15 queries, Conv4, meta-batch %d" % problem.tasks,
            "hand_count_gflop": round(hand / 1e9, 4), "rows": rows}


def protonet_limit(args: argparse.Namespace, peak: float) -> dict:
    problem = argparse.Namespace(ways=20, shots=1, queries=5, episodes=10, rounds=args.repeats, warmup=2, seed=0, no_bf16=True,
                                 device=args.device)
    episode = protonet_speed.episodes(1, problem.ways, problem.shots, problem.queries, problem.seed, args.device)[0]
    names = ("learnfast", "easyfsl")
    built = protonet_speed.build("protonet", problem.ways, problem.seed, bf16=False, device=args.device)
    recordings = {name: flops.record(lambda: built[name](*episode)) for name in names}
    layers = flops.conv4_layer_flops((1, 28, 28))
    hand = flops.forward_backward_flops(layers, problem.ways * (problem.shots + problem.queries))
    timed = protonet_speed.measure("protonet", problem)
    rows = {name: row(recordings[name], flops.attainable_seconds(recordings[name], args.repeats),
                      1 / timed[name]["episodes_per_s"], peak) for name in names}
    return {"setting": "ProtoNet training (forward, backward, Adam), 20-way 1-shot 5 queries, Conv4, one episode",
            "hand_count_gflop": round(hand / 1e9, 4), "rows": rows}


def table(report: dict) -> str:
    lines = [f"peak: {report['peak_gflop_s']} GFLOP/s (float32 2048^3 matmul), {report['device']}, {report['threads']} thread(s)"]
    for what in ("maml", "protonet"):
        if what not in report:
            continue
        part = report[what]
        lines += ["", f"{part['setting']}; hand count {part['hand_count_gflop']} GFLOP",
                  f"{'implementation':<13} {'GFLOP':>8} {'s':>7} {'GFLOP/s':>8} {'attainable':>10} {'of attainable':>13} {'of peak':>8}"]
        for name, r in part["rows"].items():
            lines.append(f"{name:<13} {r['gflop']:>8.3f} {r['seconds']:>7.3f} {r['achieved_gflop_s']:>8.1f} "
                         f"{r['attainable_at_shapes_gflop_s']:>10.1f} {r['fraction_of_attainable_at_shapes']:>13.2f} {r['fraction_of_peak']:>8.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--what", default="maml,protonet", help="comma-separated: maml, protonet")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="torch threads of every measurement")
    parser.add_argument("--tasks", type=int, default=32, help="MAML meta-batch")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds of each step, and replays of each operator")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    what = [w.strip() for w in args.what.split(",")]
    unknown = set(what) - {"maml", "protonet"}
    if unknown:
        raise SystemExit(f"--what: unknown {sorted(unknown)}; choose from maml, protonet")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is visible to torch")
    torch.set_num_threads(args.threads)
    peak = flops.matmul_flops_per_s(device=args.device)
    report = {"device": torch.cuda.get_device_name() if args.device == "cuda" else args.device, "threads": args.threads,
              "torch": torch.__version__, "peak_gflop_s": round(peak / 1e9, 1)}
    if "maml" in what:
        report["maml"] = maml_limit(args, peak)
    if "protonet" in what:
        report["protonet"] = protonet_limit(args, peak)
    print(json.dumps(report, indent=1) if args.json else table(report))


if __name__ == "__main__":
    main()
