"""One trainer for every registered algorithm, in one or two phases.

``pretrain`` (only with ``[pretrain] iterations > 0``; Baseline, MTL): the algorithm's backbone and
    a classifier over all training classes, mini-batch by mini-batch (``pretrain.py``); validated
    once, at its end.
``meta``: sample a meta-batch (hard ones every ``hard_task_every``, ``hard_tasks.py``), meta_loss,
    backward, outer step; validated every ``val_every`` iterations.

Writes to ``out_dir``: ``last.safetensors`` (everything needed to resume, in either phase, every
``checkpoint_every`` iterations of it and at its end), ``best.safetensors`` (weights + config of the
best validation score), ``pretrained.safetensors`` (the algorithm as pretraining left it),
``metrics.jsonl`` (one JSON object per logged iteration; pretraining's carry ``"phase":
"pretrain"``). ``resume=True`` continues from ``last.safetensors`` in whichever phase it was
written and gives the same final weights as an uninterrupted run. Only the outer schedule
(``RESCHEDULABLE``: the number of iterations and the learning-rate schedule) may differ from the
config the run was started with; it applies from the resumed iteration on (``metrics.jsonl`` logs
the ``lr`` of every iteration).
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import IO, Any, Callable

import torch
from tqdm.auto import tqdm

from ..episodes import EpisodeSampler
from .build import build_algorithm, build_class_batches, build_source, load_backbone, metric_name
from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .config import ConfigError, RunConfig
from .evaluate import episode_scores, evaluate
from .hard_tasks import HardTasks
from .optim import check_optimizer, make_optimizer, scheduled_lr, set_lr
from .precision import autocast, check_precision
from .pretrain import Pretraining, check_pretrain

LOG_EVERY = 10
VAL_SEED = 12345  # validation episodes are fixed, and distinct from the default test seed
PRETRAIN_SEED = 7919  # offset of the pretraining phase's seed from train.seed: its own batch stream
PRETRAIN, META = "pretrain", "meta"
HEAD = "pretrain_head."  # prefix of the pretraining classifier's weights in a pretrain-phase checkpoint
RESCHEDULABLE = ("iterations", "lr", "lr_halve_every", "lr_anneal")  # [train] keys a --resume may change

Callback = Callable[[int, dict[str, Any]], None]


def check_config(cfg: RunConfig) -> None:
    """The checks of a run's settings that go beyond types; each ``ConfigError`` names the key."""
    t = cfg.train
    check_optimizer(t, "[train]")
    check_optimizer(cfg.pretrain, "[pretrain]")
    check_pretrain(cfg.pretrain, cfg.algorithm.get("name", ""))
    if t.iterations < 0 or (t.iterations == 0 and not cfg.pretrain.iterations):
        raise ConfigError(f"[train] iterations = {t.iterations}: nothing to train; set it >= 1 (it may be 0 after a [pretrain] phase)")
    check_precision(t.precision)
    if t.hard_task_every < 0:
        raise ConfigError(f"[train] hard_task_every = {t.hard_task_every} must be >= 0 (0: no hard-task meta-batches)")


class Trainer:
    """Trains ``cfg``'s algorithm and keeps the checkpoints and the log in ``out_dir``.

    Args:
        cfg: the run configuration.
        out_dir: folder for checkpoints and ``metrics.jsonl``.
        data_root: data folder (default ``$LEARNFAST_DATA``).
        progress: show a progress bar.
        command: the command line that started the run, stored in the checkpoints.
        callbacks: called as ``callback(iteration, record)`` after every iteration of either phase
            (the iteration counts within the phase; pretraining records have ``"phase": "pretrain"``).
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
        check_config(cfg)
        self.cfg, self.out_dir, self.progress, self.command, self.callbacks = cfg, Path(out_dir), progress, command, callbacks
        t, e = cfg.train, cfg.eval
        self.metric = metric_name(cfg)
        self.algorithm = build_algorithm(cfg)
        if cfg.model.init:  # a resumed run then overwrites every weight from its own checkpoint
            load_backbone(self.algorithm, cfg.model.init)
        if cfg.model.freeze and not self.algorithm.meta_params():
            raise ConfigError(
                f"{cfg.algorithm['name']} with [model] freeze = true has no parameters left to meta-train; "
                f"evaluate its init checkpoint with `learnfast eval`, or set freeze = false"
            )
        self.train_source = build_source(cfg, "train", t.ways, t.shots, t.queries, data_root)
        self.val_source = build_source(cfg, "val", e.ways, e.shots, e.queries, data_root)
        self.optimizer = make_optimizer(self.algorithm.meta_params().values(), t)
        self.generator = torch.Generator().manual_seed(t.seed)
        self.hard_tasks = None
        if t.hard_task_every:
            if not isinstance(self.train_source, EpisodeSampler):
                raise ConfigError(f"[train] hard_task_every re-samples failed classes; dataset {cfg.data.dataset!r} has no classes")
            self.hard_tasks = HardTasks(self.train_source, t.hard_task_every)
        self.pretraining = None
        if cfg.pretrain.iterations:
            batches = build_class_batches(cfg, data_root)
            self.pretraining = Pretraining(self.algorithm, batches, cfg.pretrain, seed=t.seed + PRETRAIN_SEED)
        self.phase = PRETRAIN if self.pretraining is not None else META
        self.iteration, self.best, self.train_seconds = 0, -math.inf, 0.0

    # -- checkpoints ------------------------------------------------------------------------
    def _meta(self, **extra: Any) -> dict[str, Any]:
        meta = {
            "config": self.cfg.to_dict(), "iteration": self.iteration, "best_score": self.best,
            "train_seconds": self.train_seconds, "command": self.command, "metric": self.metric, "phase": self.phase, **extra,
        }
        if self.pretraining is not None:
            meta["pretrain_iteration"] = self.pretraining.iteration
        if self.hard_tasks is not None:
            meta["hard_task_failures"] = self.hard_tasks.failed
        return meta

    def _save_last(self) -> None:
        weights, optimizer, rng = self.algorithm.state_dict(), self.optimizer, {"train": self.generator.get_state()}
        if self.phase == PRETRAIN:  # the meta phase's optimizer has not started: save pretraining's instead
            p = self.pretraining
            weights = {**weights, **{HEAD + k: v for k, v in p.head_state().items()}}
            optimizer, rng["pretrain"] = p.optimizer, p.generator.get_state()
        save_checkpoint(self.out_dir / "last.safetensors", Checkpoint(
            weights=weights, meta=self._meta(), optimizer=optimizer.state_dict(), rng=rng))

    def _resume(self) -> None:
        path = self.out_dir / "last.safetensors"
        if not path.is_file():
            raise FileNotFoundError(f"--resume: no {path} to resume from; start the run without --resume")
        ckpt = load_checkpoint(path)
        # normalised through RunConfig so that keys added since the run started take their defaults
        saved, current = RunConfig.from_dict(ckpt.meta["config"]).to_dict(), self.cfg.to_dict()
        for key in RESCHEDULABLE:  # a run may be extended, and its outer schedule changed from here on
            saved["train"].pop(key), current["train"].pop(key)
        changed = _changed_keys(saved, current)
        if changed:
            raise ValueError(
                f"--resume: {path} was written by a different config ({', '.join(changed)} changed); resume with "
                f"the same config (only train.{', train.'.join(RESCHEDULABLE)} may change) or use a new --out folder"
            )
        self.phase, weights = ckpt.meta.get("phase", META), ckpt.weights
        if self.phase == PRETRAIN:
            p = self.pretraining
            p.load_head_state({k[len(HEAD):]: v for k, v in weights.items() if k.startswith(HEAD)})
            p.optimizer.load_state_dict(ckpt.optimizer)
            p.generator.set_state(ckpt.rng["pretrain"])
            p.iteration = ckpt.meta["pretrain_iteration"]
            weights = {k: v for k, v in weights.items() if not k.startswith(HEAD)}
        else:
            self.pretraining = None
            self.optimizer.load_state_dict(ckpt.optimizer)
        self.algorithm.load_state_dict(weights)
        self.generator.set_state(ckpt.rng["train"])
        self.iteration, self.best = ckpt.meta["iteration"], ckpt.meta["best_score"]
        self.train_seconds = ckpt.meta["train_seconds"]
        if self.hard_tasks is not None:
            self.hard_tasks.failed = list(ckpt.meta["hard_task_failures"])
        log = self.out_dir / "metrics.jsonl"
        if log.is_file():  # drop records newer than the checkpoint; they will be made again
            keep = [line for line in log.read_text().splitlines() if self._logged_before_checkpoint(json.loads(line))]
            log.write_text("".join(line + "\n" for line in keep))

    def _logged_before_checkpoint(self, record: dict[str, Any]) -> bool:
        if record.get("phase") == PRETRAIN:
            return self.pretraining is None or record["iteration"] <= self.pretraining.iteration
        return record["iteration"] <= self.iteration

    # -- the two kinds of step ------------------------------------------------------------------
    def _update(self, optimizer: torch.optim.Optimizer, loss: torch.Tensor, what: str, where: str, fix: str) -> None:
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"{what} is {loss.item()} {where}; nothing after {self.out_dir / 'last.safetensors'} was saved. {fix} and --resume"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def _pretrain_step(self) -> dict[str, Any]:
        p = self.pretraining
        loss, record = p.loss()
        self._update(p.optimizer, loss, "pretraining loss", f"at pretrain iteration {p.iteration + 1}", "Lower pretrain.lr")
        p.iteration += 1
        return record

    def _meta_step(self) -> dict[str, Any]:
        t = self.cfg.train
        lr = scheduled_lr(t, self.iteration, t.iterations)
        set_lr(self.optimizer, lr)
        hard = self.hard_tasks is not None and self.hard_tasks.is_hard(self.iteration)
        if self.hard_tasks is not None:
            batch, classes = self.hard_tasks.sample(t.meta_batch, self.generator, self.iteration)
        else:
            batch = self.train_source.sample(t.meta_batch, self.generator)
        with autocast(t.precision):
            out = self.algorithm.meta_loss(batch)
        self._update(self.optimizer, out.loss, "meta-loss", f"at iteration {self.iteration + 1}", "Lower train.lr or the inner learning rate")
        if self.hard_tasks is not None:
            self.hard_tasks.record(classes, out.predictions, batch.query_y)
        self.iteration += 1
        record = {"iteration": self.iteration, "loss": out.loss.item(), "lr": lr,
                  self.metric: episode_scores(out.predictions, batch, self.metric).mean().item()}
        return {**record, "hard_batch": True} if hard else record

    # -- the loop -----------------------------------------------------------------------------
    def validate(self) -> float:
        result = evaluate(self.algorithm, self.val_source, self.metric, self.cfg.train.val_episodes, seed=VAL_SEED)
        return result.mean

    def _run_phase(self, log: IO[str], total: int, val_every: int) -> dict[str, Any]:
        """Steps the current phase to ``total`` iterations: validation, checkpoints, log, callbacks."""
        t, phase = self.cfg.train, self.phase
        step = self._pretrain_step if phase == PRETRAIN else self._meta_step
        done = (lambda: self.pretraining.iteration) if phase == PRETRAIN else (lambda: self.iteration)
        sign = 1.0 if self.metric == "accuracy" else -1.0  # best = highest accuracy / lowest MSE
        desc = self.cfg.name if phase == META else f"{self.cfg.name} ({phase})"
        bar = tqdm(total=total, initial=done(), desc=desc, unit="it", disable=not self.progress)
        record: dict[str, Any] = {}
        while done() < total:
            started = time.perf_counter()
            record = step()
            if done() % val_every == 0 or done() == total:
                score = self.validate()
                record["val_" + self.metric] = score
                if sign * score > self.best:
                    self.best = sign * score
                    save_checkpoint(self.out_dir / "best.safetensors", Checkpoint(
                        weights=self.algorithm.state_dict(), meta=self._meta(val_score=score)))
            self.train_seconds += time.perf_counter() - started
            if done() % t.checkpoint_every == 0 or done() == total:
                self._save_last()
            if done() % LOG_EVERY == 0 or "val_" + self.metric in record:
                log.write(json.dumps(record) + "\n")
                log.flush()
            bar.update(1)
            bar.set_postfix({k: f"{v:.4g}" for k, v in record.items() if k not in ("iteration", "lr", "phase")})
            for callback in self.callbacks:
                callback(done(), record)
        bar.close()
        return record

    def fit(self, resume: bool = False) -> dict[str, Any]:
        """Runs the remaining phases to their iterations; returns the final record (iteration, losses, best score)."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if resume:
            self._resume()
        self.algorithm.train()
        record: dict[str, Any] = {}
        with open(self.out_dir / "metrics.jsonl", "a") as log:
            if self.phase == PRETRAIN:
                total = self.cfg.pretrain.iterations
                record = self._run_phase(log, total, val_every=total)  # validated once, at the end
                self.phase, self.pretraining = META, None  # the classifier head is discarded
                save_checkpoint(self.out_dir / "pretrained.safetensors", Checkpoint(weights=self.algorithm.state_dict(), meta=self._meta()))
                self._save_last()
            record = self._run_phase(log, self.cfg.train.iterations, self.cfg.train.val_every) or record
        sign = 1.0 if self.metric == "accuracy" else -1.0
        return {**record, "best_score": sign * self.best, "train_seconds": self.train_seconds}


def _changed_keys(saved: dict[str, Any], current: dict[str, Any], prefix: str = "") -> list[str]:
    """The dotted names of the config entries that differ between two ``RunConfig.to_dict()``s."""
    changed = []
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key), current.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changed += _changed_keys(a, b, f"{prefix}{key}.")
        elif a != b:
            changed.append(prefix + key)
    return changed
