"""One trainer for every registered algorithm, in one or two phases.

``pretrain`` (only with ``[pretrain] iterations > 0``; Baseline, MTL): the algorithm's backbone and
    a classifier over all training classes, mini-batch by mini-batch (``pretrain.py``); validated
    once, at its end.
``meta``: sample a meta-batch (hard ones every ``hard_task_every``, ``hard_tasks.py``), meta_loss,
    backward, outer step; validated every ``val_every`` iterations (and before the first with
    ``train.validate_first``).

Writes to ``out_dir``: ``last.safetensors`` (everything needed to resume, in either phase, every
``checkpoint_every`` iterations of it and at its end), ``best.safetensors`` (weights + config of the
best validation score), ``pretrained.safetensors`` (the algorithm as pretraining left it),
``metrics.jsonl`` (one JSON object per logged iteration; pretraining's carry ``"phase":
"pretrain"``), and with ``keep_every`` the meta phase's weights every ``keep_every`` iterations in
``snapshots/0001000.safetensors`` etc. (for ``learnfast average``). ``resume=True`` continues from
``last.safetensors`` in whichever phase it was written and gives the same final weights as an uninterrupted run. Only the outer schedule
(``RESCHEDULABLE``: the number of iterations and the learning-rate schedule) may differ from the
config the run was started with; it applies from the resumed iteration on (``metrics.jsonl`` logs
the ``lr`` of every iteration); so may how the algorithm executes (``EXECUTION``).
"""
from __future__ import annotations

import io
import json
import math
import signal
import threading
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO, Any, Callable, Iterator

import torch
from tqdm.auto import tqdm

from ..episodes import EpisodeSampler
from ..protocol import HIGHER_IS_BETTER
from ..tasks import Task
from .build import build_algorithm, build_class_batches, build_source, load_backbone, metric_name
from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .config import ConfigError, RunConfig
from .distributed import agree, average_gradients, barrier, check_divides, init_ranks, mean_over_ranks, resolve_device, shard_tasks
from .evaluate import EvalResult, episode_scores, evaluate
from .hard_tasks import HardTasks
from .optim import check_optimizer, make_optimizer, scheduled_lr, set_lr
from .precision import autocast, check_precision
from .pretrain import Pretraining, check_pretrain
from .restore import TRAINING_ONLY, VAL_SEED
from .run_folder import RunFolderError, RunLock, check_out_folder, prepare_run_folder
from .user_data import assign_class_split, write_class_split

LOG_EVERY = 10
PRETRAIN_SEED = 7919  # offset of the pretraining phase's seed from train.seed: its own batch stream
PRETRAIN, META = "pretrain", "meta"
HEAD = "pretrain_head."  # prefix of the pretraining classifier's weights in a pretrain-phase checkpoint
SNAPSHOTS = "snapshots"  # [train] keep_every: the weights at iterations k * keep_every, as snapshots/ITERATION.safetensors
RESCHEDULABLE = ("iterations", "lr", "lr_halve_every", "lr_anneal")  # [train] keys a --resume may change
EXECUTION = ("strategy", *TRAINING_ONLY)  # [algorithm] keys that change how a run executes, not what it computes

Callback = Callable[[int, dict[str, Any]], None]
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(KeyboardInterrupt):
    """SIGINT / SIGTERM stopped a run; ``iteration`` is where ``path`` (last.safetensors) resumes from.

    ``saved`` is False when a second signal stopped it in the middle of a step; ``path`` then holds
    the last periodic checkpoint (``iteration``; ``None`` if there is none yet).
    """

    def __init__(self, signum: int, iteration: int | None, path: Path, phase: str, saved: bool) -> None:
        self.signum, self.iteration, self.path, self.phase, self.saved = signum, iteration, path, phase, saved
        where = "nothing to resume from yet" if iteration is None else (
            f"{path} holds {'pretraining ' if phase == PRETRAIN else ''}iteration {iteration}; resume from it with the same command plus --resume")
        super().__init__(f"{signal.Signals(signum).name}: stopped{'' if saved else ' at once'}; {where}")


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
        data_root: data folder (default: ``learnfast.data.root.data_root``'s search).
        progress: show a progress bar.
        command: the command line that started the run, stored in the checkpoints.
        callbacks: called as ``callback(iteration, record)`` after every iteration of either phase
            (the iteration counts within the phase; pretraining records have ``"phase": "pretrain"``).
        device: ``"cpu"``, ``"cuda"`` or ``"auto"`` (``distributed.resolve_device``). Under torchrun
            the meta-batch's tasks are split across the ranks (``train/distributed.py``).
    """

    def __init__(
        self,
        cfg: RunConfig,
        out_dir: str | Path,
        data_root: str | Path | None = None,
        progress: bool = True,
        command: str | None = None,
        callbacks: tuple[Callback, ...] = (),
        device: str | torch.device = "cpu",
    ) -> None:
        check_config(cfg)
        self.cfg, self.out_dir, self.progress, self.command, self.callbacks = cfg, Path(out_dir), progress, command, callbacks
        t, e = cfg.train, cfg.eval
        self.metric = metric_name(cfg)
        self.algorithm = build_algorithm(cfg)
        assign_class_split(cfg)  # custom data (--data): the class split goes into the config, so checkpoints carry it
        if cfg.model.init:  # a resumed run then overwrites every weight from its own checkpoint
            load_backbone(self.algorithm, cfg.model.init)
        self.device = resolve_device(device)
        self.ranks = init_ranks(self.device)
        check_divides(t.meta_batch, self.ranks)
        if t.hard_task_every and self.ranks.active:
            raise ConfigError("[train] hard_task_every re-samples the classes one process failed on; run it in one process")
        self.algorithm.to(self.device)
        if cfg.model.freeze and not self.algorithm.meta_params():
            raise ConfigError(
                f"{cfg.algorithm['name']} with [model] freeze = true has no parameters left to meta-train; "
                f"evaluate its init checkpoint with `learnfast eval`, or set freeze = false"
            )
        self.train_source = build_source(cfg, "train", t.ways, t.shots, t.queries, data_root)
        self.val_source = build_source(cfg, "val", e.ways, e.shots, e.queries, data_root)
        self.optimizer = make_optimizer(self.algorithm.meta_params().values(), t)
        self.generator = torch.Generator().manual_seed(t.seed)
        reuse = self.algorithm.steps_per_batch
        if reuse > 1 and (t.iterations % reuse or t.checkpoint_every % reuse or t.hard_task_every):
            raise ConfigError(f"{cfg.algorithm['name']} takes {reuse} outer steps on each sampled meta-batch, so [train] iterations "
                              f"({t.iterations}) and checkpoint_every ({t.checkpoint_every}) must be multiples of {reuse}, "
                              "and hard_task_every is not available")
        self._batch: tuple[Task, Any, bool] | None = None  # the meta-batch in use, while the algorithm reuses it
        self.hard_tasks = None
        if t.hard_task_every:
            if not isinstance(self.train_source, EpisodeSampler):
                raise ConfigError(f"[train] hard_task_every re-samples failed classes; dataset {cfg.data.dataset!r} has no classes")
            self.hard_tasks = HardTasks(self.train_source, t.hard_task_every)
        self.pretraining = None
        if cfg.pretrain.iterations:
            batches = build_class_batches(cfg, data_root)
            self.pretraining = Pretraining(self.algorithm, batches, cfg.pretrain, seed=t.seed + PRETRAIN_SEED, device=self.device)
        self.phase = PRETRAIN if self.pretraining is not None else META
        self.iteration, self.best, self.best_iteration, self.train_seconds = 0, -math.inf, None, 0.0
        self.saved_at: int | None = None  # the (phase's) iteration last.safetensors holds
        self.validation_pending = False  # a signal cut this iteration's validation short: do it on --resume
        self._running, self._stepping, self._signal = False, False, None

    # -- checkpoints ------------------------------------------------------------------------
    def _meta(self, **extra: Any) -> dict[str, Any]:
        meta = {
            "config": self.cfg.to_dict(), "iteration": self.iteration, "best_score": self.best,
            "best_iteration": self.best_iteration, "train_seconds": self.train_seconds, "command": self.command, "metric": self.metric, "phase": self.phase, **extra,
        }
        if self.pretraining is not None:
            meta["pretrain_iteration"] = self.pretraining.iteration
        if self.hard_tasks is not None:
            meta["hard_task_failures"] = self.hard_tasks.failed
        return meta

    def _save_last(self) -> None:
        self.saved_at = self._done()
        if not self.ranks.main:  # rank 0 writes; every rank knows what it holds
            return
        weights, optimizer, rng = self.algorithm.state_dict(), self.optimizer, {"train": self.generator.get_state()}
        if self.phase == PRETRAIN:  # the meta phase's optimizer has not started: save pretraining's instead
            p = self.pretraining
            weights = {**weights, **{HEAD + k: v for k, v in p.head_state().items()}}
            optimizer, rng["pretrain"] = p.optimizer, p.generator.get_state()
        save_checkpoint(self.out_dir / "last.safetensors", Checkpoint(
            weights=weights, meta=self._meta(validation_pending=self.validation_pending), optimizer=optimizer.state_dict(), rng=rng))

    def _resume(self) -> None:
        path = self.out_dir / "last.safetensors"
        if not path.is_file():
            raise FileNotFoundError(f"--resume: no {path} to resume from; start the run without --resume")
        ckpt = load_checkpoint(path)
        # normalised through RunConfig so that keys added since the run started take their defaults
        saved, current = RunConfig.from_dict(ckpt.meta["config"]).to_dict(), self.cfg.to_dict()
        for key in RESCHEDULABLE:  # a run may be extended, and its outer schedule changed from here on
            saved["train"].pop(key), current["train"].pop(key)
        for key in EXECUTION:  # and moved to another way of running the same maths
            saved["algorithm"].pop(key, None), current["algorithm"].pop(key, None)
        changed = _changed_keys(saved, current)
        if changed:
            raise ValueError(
                f"--resume: {path} was written by a different config ({', '.join(changed)} changed); resume with "
                f"the same config (only train.{', train.'.join(RESCHEDULABLE)} and algorithm.{', algorithm.'.join(EXECUTION)} may "
                f"change) or use a new --out folder"
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
        self.best_iteration, self.train_seconds = ckpt.meta.get("best_iteration"), ckpt.meta["train_seconds"]
        self.validation_pending = bool(ckpt.meta.get("validation_pending", False))
        self.saved_at = self._done()
        if self.hard_tasks is not None:
            self.hard_tasks.failed = list(ckpt.meta["hard_task_failures"])
        log = self.out_dir / "metrics.jsonl"
        if log.is_file() and self.ranks.main:  # drop records newer than the checkpoint; they will be made again
            keep = [line for line in log.read_text().splitlines() if self._logged_before_checkpoint(json.loads(line))]
            log.write_text("".join(line + "\n" for line in keep))

    def _logged_before_checkpoint(self, record: dict[str, Any]) -> bool:
        if record.get("phase") == PRETRAIN:
            return self.pretraining is None or record["iteration"] <= self.pretraining.iteration
        return record["iteration"] <= self.iteration

    # -- the two kinds of step ------------------------------------------------------------------
    @property
    def _sign(self) -> float:
        """``best`` is kept as ``sign * score``, so higher is better: highest accuracy, lowest loss or MSE."""
        return 1.0 if self.metric in HIGHER_IS_BETTER else -1.0

    def _done(self) -> int:
        """Iterations done in the current phase."""
        return self.pretraining.iteration if self.phase == PRETRAIN else self.iteration

    def _kept(self) -> str:
        """What a run stopped by a non-finite value leaves to resume from."""
        path = self.out_dir / "last.safetensors"
        if self.saved_at is None:
            return f"no checkpoint was written yet ({path} does not exist): start again without --resume"
        phase = "pretraining " if self.phase == PRETRAIN else ""
        return f"{path} keeps {phase}iteration {self.saved_at}, the last with finite weights; --resume from it"

    def _update(self, optimizer: torch.optim.Optimizer, loss: torch.Tensor, what: str, where: str, fix: str) -> float:
        """One optimizer step on the ranks' mean gradient; returns the ranks' mean loss. ``FloatingPointError``
        (nothing saved) if that loss or the weights the step leaves are not finite."""
        value = mean_over_ranks(loss.detach(), self.ranks)
        if not torch.isfinite(value):
            raise FloatingPointError(f"{what} is {value.item()} {where}; {fix}. {self._kept()}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        weights = [p for group in optimizer.param_groups for p in group["params"]]
        average_gradients(weights, self.ranks)
        optimizer.step()
        if weights and not bool(torch.stack([p.detach().isfinite().all() for p in weights]).all()):
            raise FloatingPointError(f"the weights hold NaN or inf after the step {where}; {fix}. {self._kept()}")
        return value.item()

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
        if self._batch is None or self.iteration % self.algorithm.steps_per_batch == 0:
            hard, classes = self.hard_tasks is not None and self.hard_tasks.is_hard(self.iteration), None
            if self.hard_tasks is not None:
                batch, classes = self.hard_tasks.sample(t.meta_batch, self.generator, self.iteration)
            else:  # every rank draws the whole meta-batch and keeps its share: the data do not depend on the ranks
                batch = shard_tasks(self.train_source.sample(t.meta_batch, self.generator), self.ranks)
            self._batch = (batch.to(self.device), classes, hard)
        batch, classes, hard = self._batch
        self.algorithm.training_figures = self._figures_read(self.iteration + 1)
        with autocast(t.precision, self.device.type):
            out = self.algorithm.meta_loss(batch, generator=self.generator)
        loss = self._update(self.optimizer, out.loss, "meta-loss", f"at iteration {self.iteration + 1}", "Lower train.lr or the inner learning rate")
        if self.hard_tasks is not None:
            self.hard_tasks.record(classes, out.predictions, batch.query_y)
        self.iteration += 1
        if out.predictions is None:  # skipped by the algorithm: this iteration's figures are read by nobody
            record = {"iteration": self.iteration, "lr": lr}
        else:
            score = mean_over_ranks(episode_scores(out.predictions, batch, self.metric).mean(), self.ranks)
            record = {"iteration": self.iteration, "loss": loss, "lr": lr, self.metric: score.item()}
        return {**record, "hard_batch": True} if hard else record

    def _figures_read(self, iteration: int) -> bool:
        """Whether anything reads iteration ``iteration``'s loss and score: the log, validation, the bar, callbacks, hard tasks."""
        t = self.cfg.train
        return (self.progress or bool(self.callbacks) or self.hard_tasks is not None or iteration % LOG_EVERY == 0
                or iteration % t.val_every == 0 or iteration == t.iterations)

    # -- the loop -----------------------------------------------------------------------------
    def validate(self) -> EvalResult:
        """The current weights on the fixed validation episodes."""
        return evaluate(self.algorithm, self.val_source, self.metric, self.cfg.train.val_episodes, seed=VAL_SEED,
                        progress=self.progress, device=self.device, ranks=self.ranks)

    def _validate_into(self, record: dict[str, Any]) -> None:
        """Validates at the current iteration, keeps ``best.safetensors`` and adds the score to ``record``."""
        self.validation_pending = True  # until the score is in: a signal now leaves it for --resume
        result = self.validate()
        score = result.mean
        record["val_" + self.metric] = score
        if math.isfinite(result.ci95):
            record["val_ci95"] = result.ci95
        if self._sign * score > self.best:
            self.best, self.best_iteration = self._sign * score, self._done() if self.phase == META else None
            if self.ranks.main:
                save_checkpoint(self.out_dir / "best.safetensors", Checkpoint(
                    weights=self.algorithm.state_dict(), meta=self._meta(val_score=score)))
        self.validation_pending = False

    def _run_phase(self, log: IO[str], total: int, val_every: int) -> dict[str, Any]:
        """Steps the current phase to ``total`` iterations: validation, checkpoints, log, callbacks."""
        t, phase = self.cfg.train, self.phase
        step = self._pretrain_step if phase == PRETRAIN else self._meta_step
        desc = self.cfg.name if phase == META else f"{self.cfg.name} ({phase})"
        bar = tqdm(total=total, initial=self._done(), desc=desc, unit="it", disable=not self.progress)
        record: dict[str, Any] = {}
        # a signal cut the last validation short, or the starting weights (a tuned rule, a pretrained init)
        # are a candidate for best.safetensors: validated before the first step
        start = phase == META and t.validate_first and self._done() == 0 and self.best_iteration != 0
        if self.validation_pending or start:
            record = {"iteration": self._done(), **({"phase": phase} if phase == PRETRAIN else {})}
            self._validate_into(record)
            self._save_last()
            log.write(json.dumps(record) + "\n")
        while self._done() < total:
            started = time.perf_counter()
            self._stepping = True
            record = step()
            self._stepping = False
            if self._done() % val_every == 0 or self._done() == total:
                self._validate_into(record)
            self.train_seconds += time.perf_counter() - started
            # a signal stops between meta-batches: a batch the algorithm reuses is not cut (checkpoint_every is a multiple)
            stop = self._signal is not None and (phase == PRETRAIN or self._done() % self.algorithm.steps_per_batch == 0)
            if self._done() % t.checkpoint_every == 0 or self._done() == total or stop:
                self._save_last()
            if phase == META and t.keep_every and self._done() % t.keep_every == 0 and self.ranks.main:
                save_checkpoint(self.out_dir / SNAPSHOTS / f"{self._done():07d}.safetensors",
                                Checkpoint(weights=self.algorithm.state_dict(), meta=self._meta()))
            if self._done() % LOG_EVERY == 0 or "val_" + self.metric in record or stop:
                log.write(json.dumps(record) + "\n")
                log.flush()
            bar.update(1)
            bar.set_postfix({k: f"{v:.4g}" for k, v in record.items() if k not in ("iteration", "lr", "phase")})
            for callback in self.callbacks:
                callback(self._done(), record)
            if stop:
                raise TrainingInterrupted(self._signal, self.saved_at, self.out_dir / "last.safetensors", phase, saved=True)
        bar.close()
        return record

    # -- signals --------------------------------------------------------------------------------
    def _on_signal(self, signum: int, frame: Any) -> None:
        """First SIGINT/SIGTERM inside a step: finish the step, save, stop. Elsewhere, or a second one: stop now
        (``_signals_saved`` then saves the state between steps, or keeps the last checkpoint mid-step)."""
        first = self._signal is None
        self._signal = signum
        if first and self._stepping:
            return
        raise KeyboardInterrupt

    @contextmanager
    def _signals_saved(self) -> Iterator[None]:
        """SIGINT and SIGTERM save ``last.safetensors`` at the current iteration before the run stops."""
        if threading.current_thread() is not threading.main_thread():  # only the main thread may handle signals
            yield
            return
        previous = {s: signal.signal(s, self._on_signal) for s in STOP_SIGNALS}
        try:
            yield
        except KeyboardInterrupt:
            signum = self._signal or signal.SIGINT
            if not self._running or self._stepping:  # stopped in the middle of a step: its state is half-made, keep the last checkpoint
                raise TrainingInterrupted(signum, self.saved_at, self.out_dir / "last.safetensors", self.phase, saved=False) from None
            self._save_last()  # between steps: the state is whole (a cut validation is redone on --resume)
            raise TrainingInterrupted(signum, self.saved_at, self.out_dir / "last.safetensors", self.phase, saved=True) from None
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def fit(self, resume: bool = False, overwrite: bool = False) -> dict[str, Any]:
        """Runs the remaining phases to their iterations; returns the final record (iteration, losses, best score).

        The run folder is locked for the run's life (``run_folder.RunLock``). Without ``resume``, a folder
        that already holds a run is an error, unless ``overwrite`` deletes that run first. SIGINT / SIGTERM
        save ``last.safetensors`` at the current iteration and raise ``TrainingInterrupted``.
        """
        with self._folder(resume, overwrite), self._signals_saved():
            if resume:
                self._resume()
            return self._fit()

    @contextmanager
    def _folder(self, resume: bool, overwrite: bool) -> Iterator[None]:
        """The run folder, checked and locked by rank 0 for the run's life; every rank stops with its error, if any."""
        with ExitStack() as held:
            error = None
            if self.ranks.main:
                try:
                    check_out_folder(self.out_dir)
                    self.out_dir.mkdir(parents=True, exist_ok=True)
                    held.enter_context(RunLock(self.out_dir))
                    prepare_run_folder(self.out_dir, resume, overwrite)
                except RunFolderError as err:
                    error = str(err)
            error = agree(error, self.ranks)
            if error is not None:
                raise RunFolderError(error)
            barrier(self.ranks)  # rank 0 has emptied the folder (--overwrite) before anyone reads it
            yield

    def _fit(self) -> dict[str, Any]:
        self._running = True  # from here on the state is whole between steps, and a signal saves it
        self.algorithm.train()
        if self.cfg.data.dataset == "custom" and self.ranks.main:
            write_class_split(self.cfg, self.out_dir)
        record: dict[str, Any] = {}
        with (open(self.out_dir / "metrics.jsonl", "a") if self.ranks.main else io.StringIO()) as log:  # rank 0 logs
            if self.phase == PRETRAIN:
                total = self.cfg.pretrain.iterations
                record = self._run_phase(log, total, val_every=total)  # validated once, at the end
                self.phase, self.pretraining = META, None  # the classifier head is discarded
                if self.ranks.main:
                    save_checkpoint(self.out_dir / "pretrained.safetensors", Checkpoint(weights=self.algorithm.state_dict(), meta=self._meta()))
                self._save_last()
            record = self._run_phase(log, self.cfg.train.iterations, self.cfg.train.val_every) or record
        return {**record, "best_score": self._sign * self.best, "best_iteration": self.best_iteration,
                "train_seconds": self.train_seconds, "warnings": self._warnings(self._sign * self.best)}

    def _warnings(self, best: float) -> list[str]:
        """A run that learned nothing: its best validation accuracy is near chance (1 / ways)."""
        chance = 1.0 / self.cfg.eval.ways
        if self.metric != "accuracy" or not math.isfinite(best) or best > chance + 0.1 * (1 - chance):
            return []
        return [f"the best validation accuracy, {100 * best:.1f} %, is near chance ({100 * chance:.1f} % at "
                f"{self.cfg.eval.ways} ways): the run did not learn; check train.lr ({self.cfg.train.lr:g}) and the inner learning rate"]


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
