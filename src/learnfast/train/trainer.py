"""One trainer for every registered algorithm: sample a meta-batch, meta_loss, backward, outer step.

Writes to ``out_dir``: ``last.safetensors`` (everything needed to resume, every
``checkpoint_every`` iterations), ``best.safetensors`` (weights + config of the best validation
score), ``metrics.jsonl`` (one JSON object per logged iteration). ``resume=True`` continues from
``last.safetensors`` and gives the same final weights as an uninterrupted run.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Callable

import torch
from tqdm.auto import tqdm

from .build import build_algorithm, build_source, metric_name
from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .config import RunConfig
from .evaluate import evaluate, episode_scores

LOG_EVERY = 10
VAL_SEED = 12345  # validation episodes are fixed, and distinct from the default test seed

Callback = Callable[[int, dict[str, Any]], None]


class Trainer:
    """Meta-trains ``cfg``'s algorithm and keeps the checkpoints and the log in ``out_dir``.

    Args:
        cfg: the run configuration.
        out_dir: folder for checkpoints and ``metrics.jsonl``.
        data_root: data folder (default ``$LEARNFAST_DATA``).
        progress: show a progress bar.
        command: the command line that started the run, stored in the checkpoints.
        callbacks: called as ``callback(iteration, record)`` after every iteration.
    """

    def __init__(
        self,
        cfg: RunConfig,
        out_dir: str | Path,
        data_root: str | Path | None = None,
        progress: bool = True,
        command: str | None = None,
        callbacks: tuple[Callback, ...] = (),
    ) -> None:
        self.cfg, self.out_dir, self.progress, self.command, self.callbacks = cfg, Path(out_dir), progress, command, callbacks
        t, e = cfg.train, cfg.eval
        self.metric = metric_name(cfg)
        self.algorithm = build_algorithm(cfg)
        self.train_source = build_source(cfg, "train", t.ways, t.shots, t.queries, data_root)
        self.val_source = build_source(cfg, "val", e.ways, e.shots, e.queries, data_root)
        self.optimizer = torch.optim.Adam(self.algorithm.parameters(), lr=t.lr)
        self.generator = torch.Generator().manual_seed(t.seed)
        self.iteration, self.best, self.train_seconds = 0, -math.inf, 0.0

    # -- checkpoints ------------------------------------------------------------------------
    def _meta(self, **extra: Any) -> dict[str, Any]:
        return {
            "config": self.cfg.to_dict(), "iteration": self.iteration, "best_score": self.best,
            "train_seconds": self.train_seconds, "command": self.command, "metric": self.metric, **extra,
        }

    def _save_last(self) -> None:
        save_checkpoint(self.out_dir / "last.safetensors", Checkpoint(
            weights=self.algorithm.state_dict(), meta=self._meta(),
            optimizer=self.optimizer.state_dict(), rng={"train": self.generator.get_state()},
        ))

    def _resume(self) -> None:
        path = self.out_dir / "last.safetensors"
        if not path.is_file():
            raise FileNotFoundError(f"--resume: no {path} to resume from; start the run without --resume")
        ckpt = load_checkpoint(path)
        saved, current = ckpt.meta["config"], self.cfg.to_dict()
        saved["train"].pop("iterations"), current["train"].pop("iterations")  # a run may be extended
        if saved != current:
            raise ValueError(f"--resume: {path} was written by a different config; resume with the same config or use a new --out folder")
        self.algorithm.load_state_dict(ckpt.weights)
        self.optimizer.load_state_dict(ckpt.optimizer)
        self.generator.set_state(ckpt.rng["train"])
        self.iteration, self.best = ckpt.meta["iteration"], ckpt.meta["best_score"]
        self.train_seconds = ckpt.meta["train_seconds"]
        log = self.out_dir / "metrics.jsonl"
        if log.is_file():  # drop records newer than the checkpoint; they will be made again
            keep = [line for line in log.read_text().splitlines() if json.loads(line)["iteration"] <= self.iteration]
            log.write_text("".join(line + "\n" for line in keep))

    # -- the loop ---------------------------------------------------------------------------
    def validate(self) -> float:
        result = evaluate(self.algorithm, self.val_source, self.metric, self.cfg.train.val_episodes, seed=VAL_SEED)
        return result.mean

    def fit(self, resume: bool = False) -> dict[str, Any]:
        """Trains to ``cfg.train.iterations``; returns the final record (iteration, losses, best score)."""
        t = self.cfg.train
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if resume:
            self._resume()
        sign = 1.0 if self.metric == "accuracy" else -1.0  # best = highest accuracy / lowest MSE
        record: dict[str, Any] = {}
        self.algorithm.train()
        bar = tqdm(total=t.iterations, initial=self.iteration, desc=self.cfg.name, unit="it", disable=not self.progress)
        with open(self.out_dir / "metrics.jsonl", "a") as log:
            while self.iteration < t.iterations:
                started = time.perf_counter()
                lr = t.lr * 0.5 ** (self.iteration // t.lr_halve_every) if t.lr_halve_every else t.lr
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                batch = self.train_source.sample(t.meta_batch, self.generator)
                out = self.algorithm.meta_loss(batch)
                if not torch.isfinite(out.loss):
                    raise FloatingPointError(
                        f"meta-loss is {out.loss.item()} at iteration {self.iteration + 1}; nothing after "
                        f"{self.out_dir / 'last.safetensors'} was saved. Lower train.lr or the inner learning rate and --resume"
                    )
                self.optimizer.zero_grad(set_to_none=True)
                out.loss.backward()
                self.optimizer.step()
                self.iteration += 1
                record = {"iteration": self.iteration, "loss": out.loss.item(), "lr": lr,
                          self.metric: episode_scores(out.predictions, batch, self.metric).mean().item()}
                if self.iteration % t.val_every == 0 or self.iteration == t.iterations:
                    score = self.validate()
                    record["val_" + self.metric] = score
                    if sign * score > self.best:
                        self.best = sign * score
                        save_checkpoint(self.out_dir / "best.safetensors", Checkpoint(
                            weights=self.algorithm.state_dict(), meta=self._meta(val_score=score)))
                self.train_seconds += time.perf_counter() - started
                if self.iteration % t.checkpoint_every == 0 or self.iteration == t.iterations:
                    self._save_last()
                if self.iteration % LOG_EVERY == 0 or "val_" + self.metric in record:
                    log.write(json.dumps(record) + "\n")
                    log.flush()
                bar.update(1)
                bar.set_postfix({k: f"{v:.4g}" for k, v in record.items() if k not in ("iteration", "lr")})
                for callback in self.callbacks:
                    callback(self.iteration, record)
        bar.close()
        return {**record, "best_score": sign * self.best, "train_seconds": self.train_seconds}
