"""Cost of the learned optimizer: a step of ``LearnedOptimizer`` against ``torch.optim.Adam``, and meta-training time.

Rows, each the median of ``--rounds`` timings in one process:

``step ratio``      seconds per training step (forward, backward, optimizer step) with ``LearnedOptimizer``
                    over the same with ``torch.optim.Adam``, on the MNIST-1D optimizee (40-20-10 sigmoid MLP,
                    1030 parameters, batch 128) and on a wider one (40-256-256-10, 78k parameters), for the
                    paper's LSTM and for the momentum LSTM (``rule = "momentum-lstm"``)
``meta-iteration``  seconds per trainer iteration of ``l2o-quadratic`` and ``l2o-mlp`` (``meta_loss`` and
                    its backward: one 100-step run of the config's meta-batch, all five truncations, and
                    with ``truncations = "one"``)

    python benchmarks/l2o_speed.py --threads 1 --json
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from learnfast.models.mlp import MLP
from learnfast.optim import LearnedOptimizer, LSTMOptimizer, MomentumLSTM
from learnfast.train.build import build_algorithm, build_source
from learnfast.train.config import load_config

from _report import print_report


def median_seconds(fn, rounds: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def step_seconds(model: torch.nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, steps: int = 20):
    def train() -> None:
        for _ in range(steps):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
    return lambda: train()


def step_ratio(hidden: tuple[int, ...], rounds: int) -> dict[str, float]:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(128, 40, generator=g), torch.randint(0, 10, (128,), generator=g)
    model = MLP(40, hidden, 10, "sigmoid")
    learned = median_seconds(step_seconds(model, LearnedOptimizer(model.parameters(), LSTMOptimizer()), x, y), rounds) / 20
    momentum = median_seconds(step_seconds(model, LearnedOptimizer(model.parameters(), MomentumLSTM(1e-3)), x, y), rounds) / 20
    adam = median_seconds(step_seconds(model, torch.optim.Adam(model.parameters(), lr=1e-3), x, y), rounds) / 20
    return {"parameters": sum(p.numel() for p in model.parameters()), "learned_s": learned, "momentum_learned_s": momentum,
            "adam_s": adam, "ratio": learned / adam, "momentum_ratio": momentum / adam}


def meta_iteration(config: str, truncations: str, rounds: int) -> float:
    cfg = load_config(config)
    cfg.algorithm["truncations"] = truncations
    algorithm = build_algorithm(cfg)
    source = build_source(cfg, "train", 5, 1, 1)
    g = torch.Generator().manual_seed(0)

    def iteration() -> None:
        algorithm.zero_grad()
        algorithm.meta_loss(source.sample(cfg.train.meta_batch, g)).loss.backward()
    return median_seconds(iteration, rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    report = {
        "step_mlp_40_20_10": step_ratio((20,), args.rounds),
        "step_mlp_40_256_256_10": step_ratio((256, 256), args.rounds),
        **{f"meta_iteration_{c}_{t}_s": meta_iteration(c, t, max(1, args.rounds // 2))
           for c in ("l2o-quadratic", "l2o-mlp") for t in ("all", "one")},
        "threads": args.threads, "torch": torch.__version__,
    }
    print_report(report, args.json)


if __name__ == "__main__":
    main()
