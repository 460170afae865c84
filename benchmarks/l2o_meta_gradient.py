"""Does a learned optimizer's meta-gradient predict its meta-loss? Slopes against finite differences.

For a checkpoint of ``algorithm l2o`` (its weights and its config's objective and unroll), on
``--problems`` training problems: the meta-gradient g, first order (the optimizee's gradients held
constant, the paper's choice) and second order, and the change of the meta-loss when the weights
move by ``±h`` along the unit direction ``-g / ‖g‖`` of each. A meta-gradient that describes the loss
predicts a change of ``∓h ‖g‖``; one that does not, a change of the wrong sign or size. Also, per
tensor, how far ``--batches`` independent meta-batches of the config's size agree: the norm of their
mean gradient over the mean of their norms (1: they agree; about ``1/sqrt(batches)``: noise).

    python benchmarks/l2o_meta_gradient.py runs/l2o-mlp-momentum-final/best.safetensors --threads 1
"""
from __future__ import annotations

import argparse
import itertools
import json

import torch

from learnfast.protocol import fixed_episodes
from learnfast.train.build import build_source
from learnfast.train.restore import restore


def meta_gradient(algorithm, batch) -> dict[str, torch.Tensor]:
    algorithm.zero_grad()
    algorithm.meta_loss(batch).loss.backward()
    return {k: p.grad.detach().clone() for k, p in algorithm.named_parameters() if p.grad is not None}


def meta_loss_along(algorithm, batch, direction: dict[str, torch.Tensor], h: float) -> float:
    """The meta-loss with the weights moved by ``h`` along ``direction`` (then restored)."""
    params = dict(algorithm.named_parameters())
    saved = {k: params[k].detach().clone() for k in direction}
    with torch.no_grad():
        for k, d in direction.items():
            params[k].add_(d, alpha=h)
    value = algorithm.meta_loss(batch).loss.item()  # meta_loss differentiates inside: no no_grad around it
    with torch.no_grad():
        for k, v in saved.items():
            params[k].copy_(v)  # exactly: x + h d - h d need not be x, and a head at 0 must stay at 0
    return value


def agreement(algorithm, source, batches: int, size: int, seed: int) -> dict[str, float]:
    """Per tensor: ‖mean of the batches' gradients‖ / mean ‖batch gradient‖."""
    grads = [meta_gradient(algorithm, b) for b in itertools.islice(fixed_episodes(source, size * batches, seed, size), batches)]
    out = {}
    for key in grads[0]:
        stacked = torch.stack([g[key] for g in grads]).reshape(batches, -1)
        out[key] = stacked.mean(0).norm().item() / max(stacked.norm(dim=1).mean().item(), 1e-30)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--problems", type=int, default=32, help="training problems of the slope check")
    parser.add_argument("--steps", type=float, nargs="+", default=[0.01, 0.1], help="h: distances along the direction")
    parser.add_argument("--batches", type=int, default=16, help="meta-batches of the agreement check (0: skip it)")
    parser.add_argument("--seed", type=int, default=123)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    restored = restore(args.checkpoint)
    algorithm, config = restored.algorithm, restored.config
    if not getattr(algorithm, "learned_optimizer", False):
        raise SystemExit(f"l2o_meta_gradient: {args.checkpoint} is a {config.algorithm['name']} checkpoint; pass one of algorithm l2o")
    e = config.eval
    source = build_source(config, "train", e.ways, e.shots, e.queries)  # meta-training problems
    batch = next(fixed_episodes(source, args.problems, args.seed, args.problems))
    base = algorithm.meta_loss(batch).loss.item()
    report = {"checkpoint": args.checkpoint, "problems": args.problems, "objective": algorithm.objective,
              "unroll": algorithm.unroll, "meta_loss": base, "slopes": {}}
    configured = algorithm.second_order
    for order, second in (("first order", False), ("second order", True)):
        algorithm.second_order = second
        g = meta_gradient(algorithm, batch)
        norm = torch.sqrt(sum((v ** 2).sum() for v in g.values())).item()
        direction = {k: -v / norm for k, v in g.items()}
        report["slopes"][order] = {"gradient_norm": norm, "predicted_change_per_h": -norm,
                                   "measured_change": {h: meta_loss_along(algorithm, batch, direction, h) - base for h in args.steps}}
    algorithm.second_order = configured  # the agreement check uses the checkpoint's own meta-gradient
    if args.batches:
        report["agreement"] = agreement(algorithm, source, args.batches, config.train.meta_batch, args.seed + 1)
    if args.json:
        print(json.dumps(report, indent=1))
        return
    print(f"{args.checkpoint}: meta-loss {base:.4f} on {args.problems} training problems")
    print("| meta-gradient | ‖g‖ | predicted change at h | " + " | ".join(f"measured at h = {h:g}" for h in args.steps) + " |")
    print("|---|---|---|" + "---|" * len(args.steps))
    for order, row in report["slopes"].items():
        print(f"| {order} | {row['gradient_norm']:.4g} | -{row['gradient_norm']:.4g} h | "
              + " | ".join(f"{row['measured_change'][h]:+.4f}" for h in args.steps) + " |")
    if args.batches:
        print(f"agreement of {args.batches} meta-batches of {config.train.meta_batch} (noise: ~{args.batches ** -0.5:.2f}): "
              + ", ".join(f"{k} {v:.2f}" for k, v in report["agreement"].items()))


if __name__ == "__main__":
    main()
