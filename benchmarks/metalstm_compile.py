"""Meta-LSTM with its meta-learner cell compiled (``algorithm.compile_cell``) against eager, one process.

Times a trainer iteration of ``metalstm-omniglot-5w1s`` (``meta_loss`` of one meta-batch of real
Omniglot episodes and its backward), eager and compiled, alternating, each the median of
``--rounds``; reports the ratio, the compile time (the first compiled iteration minus a median one)
and the largest difference of the meta-gradients of the same batch.

    python benchmarks/metalstm_compile.py --threads 1 --json
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from learnfast.train.build import build_algorithm, build_source
from learnfast.train.config import load_config

from _report import print_report


def iteration_fn(config: str, compiled: bool):
    cfg = load_config(config)
    cfg.algorithm["compile_cell"] = compiled
    torch.manual_seed(0)
    algorithm = build_algorithm(cfg, seed=0)
    source = build_source(cfg, "train", cfg.train.ways, cfg.train.shots, cfg.train.queries)
    batch = source.sample(cfg.train.meta_batch, torch.Generator().manual_seed(0))

    def iteration() -> dict[str, torch.Tensor]:
        algorithm.zero_grad()
        algorithm.meta_loss(batch).loss.backward()
        return {k: p.grad.clone() for k, p in algorithm.named_parameters() if p.grad is not None}
    return iteration


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="metalstm-omniglot-5w1s")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    fns = {"eager": iteration_fn(args.config, False), "compiled": iteration_fn(args.config, True)}
    started = time.perf_counter()
    grads = {name: fn() for name, fn in fns.items()}  # warm-up; the compiled one compiles here
    first = time.perf_counter() - started
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(args.rounds):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    eager, compiled = (statistics.median(times[n]) for n in ("eager", "compiled"))
    report = {
        "config": args.config, "eager_s": eager, "compiled_s": compiled, "ratio": eager / compiled,
        "compile_s": first - eager - compiled,
        "max_grad_difference": max((grads["eager"][k] - grads["compiled"][k]).abs().max().item() for k in grads["eager"]),
        "max_grad": max(g.abs().max().item() for g in grads["eager"].values()),
        "threads": args.threads, "torch": torch.__version__,
    }
    print_report(report, args.json)


if __name__ == "__main__":
    main()
