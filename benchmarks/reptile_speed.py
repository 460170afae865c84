"""Seconds per Reptile meta-batch on Omniglot-shaped tasks: the paper's recipe against full-batch steps.

The paper's 5-way 1-shot recipe (``configs/reptile-omniglot-5w1s.toml``): 5 tasks of 50 images
(10 per class), 5 inner Adam steps on mini-batches of 10, the training-fit figure logged
(``log_episode = false``). Rows, timed alternately in one process (median of ``--rounds``):

``recipe-loop``      the recipe, tasks one after another (``strategy="loop"``, the config's)
``recipe-vmap``      the recipe, tasks under ``vmap`` (``strategy="vmap"``)
``recipe-logged``    the recipe plus a logged test episode per task (``log_episode = true``)
``fullbatch-loop``   every inner step on all 50 images (no ``inner_batch``), the cost before mini-batches
``old-config``       the previous config: 10 tasks of 75 images, 3 full-batch SGD steps, test episode logged

    python benchmarks/reptile_speed.py --threads 1 --json
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

import learnfast as lf
from learnfast.algorithms import Reptile

RECIPE = dict(inner_optimizer="adam", inner_lr=1e-3, inner_steps=5, log_episode=False)
ROWS = {
    "recipe-loop": dict(tasks=5, per_class=10, kw=dict(RECIPE, inner_batch=10, strategy="loop")),
    "recipe-vmap": dict(tasks=5, per_class=10, kw=dict(RECIPE, inner_batch=10, strategy="vmap")),
    "recipe-logged": dict(tasks=5, per_class=10, kw=dict(RECIPE, inner_batch=10, strategy="loop", log_episode=True)),
    "fullbatch-loop": dict(tasks=5, per_class=10, kw=dict(RECIPE, strategy="loop")),
    "old-config": dict(tasks=10, per_class=15, kw=dict(inner_lr=0.1, inner_steps=3, strategy="loop")),
}


def task_batch(tasks: int, per_class: int, generator: torch.Generator) -> lf.Task:
    """5-way tasks of ``per_class`` random 28x28 images per class: 1 support + the rest query."""
    x = torch.rand(tasks, 5, per_class, 1, 28, 28, generator=generator)
    y = torch.arange(5).view(1, 5, 1).expand(tasks, 5, per_class)
    return lf.Task(x[:, :, :1].flatten(1, 2), y[:, :, :1].flatten(1), x[:, :, 1:].flatten(1, 2), y[:, :, 1:].flatten(1))


def step_seconds(reptile: Reptile, batch: lf.Task, generator: torch.Generator) -> float:
    sync = torch.cuda.synchronize if batch.support_x.is_cuda else (lambda: None)
    sync()
    start = time.perf_counter()
    reptile.zero_grad()
    reptile.meta_loss(batch, generator=generator).loss.backward()
    sync()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the model and tasks live")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is visible to torch")
    torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)
    setups = {}
    for name, row in ROWS.items():
        torch.manual_seed(0)
        model = lf.Conv4(out_features=5, strided=True).to(args.device)
        setups[name] = (Reptile(model, **row["kw"]), task_batch(row["tasks"], row["per_class"], generator).to(args.device))
    times: dict[str, list[float]] = {name: [] for name in ROWS}
    for name, (reptile, batch) in setups.items():  # warm-up
        step_seconds(reptile, batch, generator)
    for r in range(args.rounds):
        for name in (list(ROWS) if r % 2 == 0 else list(reversed(ROWS))):
            reptile, batch = setups[name]
            times[name].append(step_seconds(reptile, batch, generator))
    medians = {name: statistics.median(t) for name, t in times.items()}
    result = {"device": args.device, "threads": args.threads, "rounds": args.rounds, "seconds_per_meta_batch": medians,
              "speedup_minibatch_vs_fullbatch": medians["fullbatch-loop"] / medians["recipe-loop"],
              "speedup_vmap_vs_loop": medians["recipe-loop"] / medians["recipe-vmap"],
              "speedup_fit_vs_logged_episode": medians["recipe-logged"] / medians["recipe-loop"],
              "hours_for_100000": {name: 1e5 * s / 3600 for name, s in medians.items()}}
    if args.json:
        print(json.dumps(result))
        return
    for name, s in medians.items():
        print(f"{name:16s} {s * 1000:8.1f} ms per meta-batch   100000 meta-batches: {1e5 * s / 3600:5.1f} h")
    print(f"mini-batches vs full batch: {result['speedup_minibatch_vs_fullbatch']:.2f}x; vmap vs loop: "
          f"{result['speedup_vmap_vs_loop']:.2f}x; training fit vs logged test episode: {result['speedup_fit_vs_logged_episode']:.2f}x")


if __name__ == "__main__":
    main()
