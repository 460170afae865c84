"""The trainer: outputs on disk, bitwise-exact kill + resume, and failing fast on a non-finite loss."""
import json
import math

import pytest
import torch

from learnfast.train.checkpoint import load_checkpoint
from learnfast.train.config import ConfigError, RunConfig
from learnfast.train.trainer import TrainingInterrupted, Trainer


def sinusoid_cfg(iterations=12, **train):
    cfg = RunConfig(name="tiny-sine", algorithm={"name": "maml", "inner_lr": 0.01, "inner_steps": 1, "eval_inner_steps": 2})
    cfg.data.dataset = "sinusoid"
    cfg.model.backbone, cfg.model.hidden = "mlp", 8
    settings = dict(shots=5, queries=5, meta_batch=4, iterations=iterations, lr=1e-2,
                    val_every=6, val_episodes=4, checkpoint_every=4, seed=3)
    settings.update(train)
    for key, value in settings.items():
        setattr(cfg.train, key, value)
    cfg.eval.shots, cfg.eval.queries, cfg.eval.episodes = 5, 10, 4
    return cfg


def read_log(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def without_time(record):
    return {k: v for k, v in record.items() if k != "train_seconds"}


def test_tiny_run_writes_outputs(tmp_path):
    seen = []
    trainer = Trainer(sinusoid_cfg(), tmp_path, progress=False, command="pytest",
                      callbacks=(lambda it, rec: seen.append(it),))
    summary = trainer.fit()
    assert seen == list(range(1, 13))
    assert summary["iteration"] == 12
    assert math.isfinite(summary["loss"]) and math.isfinite(summary["mse"])
    assert summary["best_score"] == pytest.approx(min(r["val_mse"] for r in read_log(tmp_path / "metrics.jsonl") if "val_mse" in r))
    assert {p.name for p in tmp_path.iterdir()} == {".lock", "best.safetensors", "last.safetensors", "metrics.jsonl"}

    last = load_checkpoint(tmp_path / "last.safetensors")
    assert last.meta["iteration"] == 12 and last.meta["command"] == "pytest" and last.meta["metric"] == "mse"
    assert RunConfig.from_dict(last.meta["config"]) == trainer.cfg
    assert last.optimizer is not None and "train" in last.rng
    for k, v in trainer.algorithm.state_dict().items():
        assert torch.equal(last.weights[k], v), k
    best = load_checkpoint(tmp_path / "best.safetensors")
    assert best.optimizer is None and "val_score" in best.meta

    log = read_log(tmp_path / "metrics.jsonl")
    assert [r["iteration"] for r in log] == [6, 10, 12]  # every LOG_EVERY=10 and at each validation
    assert all("val_mse" in r for r in log if r["iteration"] in (6, 12))


def test_kill_and_resume_is_bitwise_identical(tmp_path):
    cfg = sinusoid_cfg(iterations=12, checkpoint_every=4, val_every=6)
    a = Trainer(cfg, tmp_path / "a", progress=False)
    summary_a = a.fit()

    class Killed(Exception):  # a crash (a Ctrl-C would save the current iteration)
        pass

    def kill_at_7(iteration, record):
        if iteration == 7:  # between checkpoints (4 and 8), after a validation at 6
            raise Killed

    b = Trainer(sinusoid_cfg(iterations=12, checkpoint_every=4, val_every=6), tmp_path / "b", progress=False, callbacks=(kill_at_7,))
    with pytest.raises(Killed):
        b.fit()
    assert load_checkpoint(tmp_path / "b" / "last.safetensors").meta["iteration"] == 4
    assert [r["iteration"] for r in read_log(tmp_path / "b" / "metrics.jsonl")] == [6]  # logged after the checkpoint

    resumed = Trainer(sinusoid_cfg(iterations=12, checkpoint_every=4, val_every=6), tmp_path / "b", progress=False)
    summary_b = resumed.fit(resume=True)

    for k, v in a.algorithm.state_dict().items():
        assert torch.equal(resumed.algorithm.state_dict()[k], v), k
    assert without_time(summary_a) == without_time(summary_b)
    log_a, log_b = read_log(tmp_path / "a" / "metrics.jsonl"), read_log(tmp_path / "b" / "metrics.jsonl")
    iterations_b = [r["iteration"] for r in log_b]
    assert len(iterations_b) == len(set(iterations_b)), f"duplicate iterations in the log: {iterations_b}"
    assert log_a == log_b
    for name in ("best.safetensors", "last.safetensors"):
        ca, cb = load_checkpoint(tmp_path / "a" / name), load_checkpoint(tmp_path / "b" / name)
        assert all(torch.equal(ca.weights[k], cb.weights[k]) for k in ca.weights), name
        assert ca.meta["iteration"] == cb.meta["iteration"]


def test_resume_can_extend_a_finished_run(tmp_path):
    Trainer(sinusoid_cfg(iterations=8), tmp_path / "short", progress=False).fit()
    extended = Trainer(sinusoid_cfg(iterations=12), tmp_path / "short", progress=False)
    extended.fit(resume=True)
    straight = Trainer(sinusoid_cfg(iterations=12), tmp_path / "long", progress=False)
    straight.fit()
    # iteration 8 of the short run was a final validation + checkpoint; weights must still continue identically
    for k, v in straight.algorithm.state_dict().items():
        assert torch.equal(extended.algorithm.state_dict()[k], v), k


def test_resume_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no .*last.safetensors to resume from"):
        Trainer(sinusoid_cfg(), tmp_path, progress=False).fit(resume=True)
    Trainer(sinusoid_cfg(iterations=4), tmp_path, progress=False).fit()
    with pytest.raises(ValueError, match=r"different config \(train\.meta_batch changed\)"):
        Trainer(sinusoid_cfg(iterations=4, meta_batch=2), tmp_path, progress=False).fit(resume=True)


def test_resume_may_change_the_outer_schedule(tmp_path):
    """Extending a run with a new learning-rate schedule: it applies from the resumed iteration on."""
    Trainer(sinusoid_cfg(iterations=4, lr=1e-2), tmp_path, progress=False).fit()
    Trainer(sinusoid_cfg(iterations=8, lr=1e-3, lr_halve_every=6), tmp_path, progress=False).fit(resume=True)
    lrs = {r["iteration"]: r["lr"] for r in map(json.loads, (tmp_path / "metrics.jsonl").read_text().splitlines()) if "lr" in r}
    assert (lrs[4], lrs[6], lrs[8]) == (1e-2, 1e-3, 5e-4)


def test_resume_may_change_how_the_algorithm_executes(tmp_path):
    """``algorithm.strategy`` is an execution setting: a run continued under another one goes on; a maths setting may not change."""
    Trainer(sinusoid_cfg(iterations=4), tmp_path, progress=False).fit()
    moved = sinusoid_cfg(iterations=8)
    moved.algorithm["strategy"] = "loop"
    trainer = Trainer(moved, tmp_path, progress=False)
    trainer.fit(resume=True)
    assert trainer.iteration == 8
    changed = sinusoid_cfg(iterations=12)
    changed.algorithm["inner_lr"] = 0.02
    with pytest.raises(ValueError, match=r"different config \(algorithm\.inner_lr changed\).*algorithm\.strategy"):
        Trainer(changed, tmp_path, progress=False).fit(resume=True)


def test_non_finite_loss_fails_fast_and_keeps_last_checkpoint(tmp_path):
    # Adam with a huge lr makes the weights explode after the first step
    cfg = sinusoid_cfg(iterations=6, lr=1e30, checkpoint_every=1, val_every=100)
    trainer = Trainer(cfg, tmp_path, progress=False)
    with pytest.raises(FloatingPointError) as info:
        trainer.fit()
    message = str(info.value)
    last = tmp_path / "last.safetensors"
    ckpt = load_checkpoint(last)
    assert f"{last} keeps iteration {ckpt.meta['iteration']}, the last with finite weights" in message
    assert f"at iteration {ckpt.meta['iteration'] + 1}" in message
    assert all(torch.isfinite(v).all() for v in ckpt.weights.values())


def test_non_finite_on_first_iteration(tmp_path):
    cfg = sinusoid_cfg(iterations=3)
    cfg.algorithm["inner_lr"] = 1e30
    with pytest.raises(FloatingPointError, match="meta-loss is (nan|inf|-inf) at iteration 1"):
        Trainer(cfg, tmp_path, progress=False).fit()
    assert not (tmp_path / "last.safetensors").exists()


def test_lr_halving_is_logged(tmp_path):
    records = []
    cfg = sinusoid_cfg(iterations=5, lr=1e-2, lr_halve_every=2, val_every=100)
    Trainer(cfg, tmp_path, progress=False, callbacks=(lambda it, rec: records.append(rec),)).fit()
    assert [r["lr"] for r in records] == pytest.approx([1e-2, 1e-2, 5e-3, 5e-3, 2.5e-3])


def test_protonet_omniglot_tiny_run(tmp_path, data_root):
    cfg = RunConfig(name="tiny-proto", algorithm={"name": "protonet"})
    cfg.data.dataset, cfg.data.split = "omniglot", "vinyals"
    cfg.model.backbone, cfg.model.hidden = "conv4", 8
    for key, value in dict(ways=5, shots=1, queries=2, meta_batch=2, iterations=4, lr=1e-3,
                           val_every=2, val_episodes=4, checkpoint_every=2, seed=0).items():
        setattr(cfg.train, key, value)
    cfg.eval.ways, cfg.eval.shots, cfg.eval.queries = 5, 1, 2
    summary = Trainer(cfg, tmp_path, data_root=data_root, progress=False).fit()
    assert summary["iteration"] == 4
    assert 0.0 <= summary["accuracy"] <= 1.0 and 0.0 <= summary["best_score"] <= 1.0
    assert math.isfinite(summary["loss"])
    log = read_log(tmp_path / "metrics.jsonl")
    assert [r["iteration"] for r in log] == [2, 4] and all("val_accuracy" in r for r in log)
    assert load_checkpoint(tmp_path / "last.safetensors").meta["iteration"] == 4


# -- slow: the algorithms actually learn (a few hundred iterations each) --------------------------

def learning_run(tmp_path, cfg, episodes, data_root=None):
    from learnfast.train.build import build_source
    from learnfast.train.evaluate import evaluate

    trainer = Trainer(cfg, tmp_path, data_root=data_root, progress=False)
    e = cfg.eval
    test = build_source(cfg, "test", e.ways, e.shots, e.queries, data_root)
    before = evaluate(trainer.algorithm, test, trainer.metric, episodes, seed=0)
    trainer.fit()
    after = evaluate(trainer.algorithm, test, trainer.metric, episodes, seed=0)
    return before, after


@pytest.mark.slow
def test_protonet_learns_omniglot(tmp_path, data_root):
    cfg = RunConfig(name="proto-learns", algorithm={"name": "protonet"})
    cfg.model.hidden = 16
    for key, value in dict(ways=5, shots=1, queries=5, meta_batch=1, iterations=250, lr=1e-3,
                           val_every=1000, val_episodes=10, checkpoint_every=1000).items():
        setattr(cfg.train, key, value)
    cfg.eval.queries = 5
    before, after = learning_run(tmp_path, cfg, 100, data_root)
    assert after.mean > before.mean + 0.15 and after.mean > 0.6, (str(before), str(after))


@pytest.mark.slow
def test_maml_learns_omniglot(tmp_path, data_root):
    from learnfast.train.config import load_config

    cfg = load_config("maml-omniglot-5w1s")
    cfg.model.hidden = 16
    for key, value in dict(iterations=200, meta_batch=4, val_every=1000, val_episodes=10, checkpoint_every=1000).items():
        setattr(cfg.train, key, value)
    cfg.eval.queries = 5
    before, after = learning_run(tmp_path, cfg, 100, data_root)
    assert after.mean > before.mean + 0.10, (str(before), str(after))


@pytest.mark.slow
def test_maml_learns_sinusoid(tmp_path):
    from learnfast.train.config import load_config

    cfg = load_config("maml-sinusoid")
    for key, value in dict(iterations=1500, meta_batch=10, val_every=10000, val_episodes=10, checkpoint_every=10000).items():
        setattr(cfg.train, key, value)
    before, after = learning_run(tmp_path, cfg, 100)
    assert after.mean < 0.6 * before.mean, (str(before), str(after))


# -- outer optimizer option -------------------------------------------------------------------------

def test_sgd_with_momentum_and_linear_annealing_matches_a_hand_written_loop(tmp_path):
    from learnfast.train.build import build_algorithm, build_source

    cfg = sinusoid_cfg(iterations=4, optimizer="sgd", momentum=0.9, lr_anneal=True, lr=0.05, val_every=100)
    records = []
    trainer = Trainer(cfg, tmp_path, progress=False, callbacks=(lambda it, rec: records.append(rec),))
    trainer.fit()
    assert [r["lr"] for r in records] == pytest.approx([0.05, 0.0375, 0.025, 0.0125])  # linearly to 0 after the last step
    assert isinstance(trainer.optimizer, torch.optim.SGD)

    algorithm = build_algorithm(cfg)
    source = build_source(cfg, "train", cfg.train.ways, cfg.train.shots, cfg.train.queries)
    generator = torch.Generator().manual_seed(cfg.train.seed)
    optimizer = torch.optim.SGD(algorithm.parameters(), lr=0.05, momentum=0.9)
    for i in range(4):
        for group in optimizer.param_groups:
            group["lr"] = 0.05 * (1 - i / 4)
        loss = algorithm.meta_loss(source.sample(cfg.train.meta_batch, generator)).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for k, v in algorithm.state_dict().items():
        assert torch.equal(trainer.algorithm.state_dict()[k], v), k


def test_sgd_momentum_survives_kill_and_resume(tmp_path):
    cfg = lambda: sinusoid_cfg(iterations=8, optimizer="sgd", momentum=0.9, lr_anneal=True, checkpoint_every=4, val_every=100)
    straight = Trainer(cfg(), tmp_path / "a", progress=False)
    straight.fit()

    def kill_at_6(iteration, record):
        if iteration == 6:
            raise KeyboardInterrupt

    with pytest.raises(TrainingInterrupted, match="iteration 6; resume from it"):
        Trainer(cfg(), tmp_path / "b", progress=False, callbacks=(kill_at_6,)).fit()
    assert load_checkpoint(tmp_path / "b" / "last.safetensors").meta["iteration"] == 6  # Ctrl-C saves where it stopped
    resumed = Trainer(cfg(), tmp_path / "b", progress=False)
    resumed.fit(resume=True)
    for k, v in straight.algorithm.state_dict().items():
        assert torch.equal(resumed.algorithm.state_dict()[k], v), k


@pytest.mark.parametrize("settings, message", [
    (dict(optimizer="rmsprop"), r"\[train\] optimizer = 'rmsprop' is not known; choose \"adam\" or \"sgd\""),
    (dict(momentum=0.9), r"\[train\] momentum = 0.9 applies to optimizer = \"sgd\" only"),
    (dict(optimizer="sgd", momentum=1.5), r"\[train\] momentum = 1.5 must be in \[0, 1\)"),
    (dict(lr=0.0), r"\[train\] lr = 0.0 must be > 0"),
    (dict(lr_anneal=True, lr_halve_every=10), r"lr_anneal = true and lr_halve_every = 10 are two schedules; choose one"),
    (dict(hard_task_every=-1), r"hard_task_every = -1 must be >= 0"),
    (dict(hard_task_every=2), r"hard_task_every re-samples failed classes; dataset 'sinusoid' has no classes"),
    (dict(iterations=0), r"\[train\] iterations = 0: nothing to train"),
])
def test_train_settings_are_checked(tmp_path, settings, message):
    with pytest.raises(ConfigError, match=message):
        Trainer(sinusoid_cfg(**settings), tmp_path, progress=False)


def test_pretrain_settings_are_checked(tmp_path):
    cfg = sinusoid_cfg()
    cfg.pretrain.iterations = 5
    with pytest.raises(ConfigError, match=r"maml has no pretraining phase; it is for baseline, mtl"):
        Trainer(cfg, tmp_path, progress=False)
    cfg.algorithm = {"name": "baseline"}
    with pytest.raises(ConfigError, match="classification method"):  # Baseline cannot do regression at all
        Trainer(cfg, tmp_path, progress=False)
    cfg.pretrain.optimizer = "adamw"
    with pytest.raises(ConfigError, match=r"\[pretrain\] optimizer = 'adamw' is not known"):
        Trainer(cfg, tmp_path, progress=False)


# -- pretraining phase ------------------------------------------------------------------------------

def omniglot_cfg(algorithm, pretrain_iterations=6, iterations=4, **train):
    """A tiny two-phase Omniglot run on Lake's split (the fastest to load)."""
    cfg = RunConfig(name="tiny-two-phase", algorithm=algorithm)
    cfg.data.dataset, cfg.data.split = "omniglot", "lake"
    cfg.model.backbone, cfg.model.hidden = "conv4", 8
    settings = dict(ways=5, shots=1, queries=2, meta_batch=2, iterations=iterations, lr=1e-3,
                    val_every=2, val_episodes=4, checkpoint_every=2, seed=1)
    settings.update(train)
    for key, value in settings.items():
        setattr(cfg.train, key, value)
    cfg.pretrain.iterations, cfg.pretrain.batch_size, cfg.pretrain.lr = pretrain_iterations, 8, 1e-2
    cfg.eval.ways, cfg.eval.shots, cfg.eval.queries = 5, 1, 2
    return cfg


MTL_TINY = {"name": "mtl", "inner_lr": 0.1, "inner_steps": 2}


def test_pretraining_then_meta_training_writes_both_phases(tmp_path, data_root):
    cfg = omniglot_cfg(MTL_TINY, pretrain_iterations=10, iterations=4)
    seen = []
    trainer = Trainer(cfg, tmp_path, data_root=data_root, progress=False, callbacks=(lambda it, rec: seen.append((rec.get("phase", "meta"), it)),))
    backbone_before = {k: v.clone() for k, v in trainer.algorithm.model.state_dict().items()}
    ss_before = {k: v.clone() for k, v in trainer.algorithm.state_dict().items() if not k.startswith("model.")}
    summary = trainer.fit()
    assert seen == [("pretrain", i) for i in range(1, 11)] + [("meta", i) for i in range(1, 5)]
    assert summary["iteration"] == 4 and 0.0 <= summary["best_score"] <= 1.0
    assert {p.name for p in tmp_path.iterdir()} == {".lock", "best.safetensors", "last.safetensors", "pretrained.safetensors", "metrics.jsonl"}

    pretrained = load_checkpoint(tmp_path / "pretrained.safetensors")
    assert not any(k.startswith("pretrain_head.") for k in pretrained.weights)  # the classifier head is discarded
    # pretraining changed the backbone only; meta-training then changed scale/shift/head only
    assert any(not torch.equal(pretrained.weights["model." + k], v) for k, v in backbone_before.items())
    for k, v in ss_before.items():
        assert torch.equal(pretrained.weights[k], v), k
    for k, v in trainer.algorithm.model.state_dict().items():
        assert torch.equal(pretrained.weights["model." + k], v), k

    log = read_log(tmp_path / "metrics.jsonl")
    assert [(r.get("phase", "meta"), r["iteration"]) for r in log] == [("pretrain", 10), ("meta", 2), ("meta", 4)]
    assert "val_accuracy" in log[0] and "accuracy" in log[0] and math.isfinite(log[0]["loss"])
    last = load_checkpoint(tmp_path / "last.safetensors")
    assert last.meta["phase"] == "meta" and last.meta["iteration"] == 4


def test_pretraining_loss_falls(tmp_path, data_root):
    cfg = omniglot_cfg({"name": "baseline", "classifier": "cosine"}, pretrain_iterations=30, iterations=0)
    cfg.pretrain.batch_size = 32
    records = []
    Trainer(cfg, tmp_path, data_root=data_root, progress=False, callbacks=(lambda it, rec: records.append(rec),)).fit()
    assert len(records) == 30 and all(r["phase"] == "pretrain" for r in records)
    first, last = sum(r["loss"] for r in records[:5]) / 5, sum(r["loss"] for r in records[-5:]) / 5
    assert last < first, (first, last)
    assert load_checkpoint(tmp_path / "best.safetensors").meta["val_score"] == records[-1]["val_accuracy"]


@pytest.mark.parametrize("kill_phase, kill_at", [("pretrain", 5), ("pretrain", 6), ("meta", 3)])
def test_two_phase_kill_and_resume_is_bitwise_identical(tmp_path, data_root, kill_phase, kill_at):
    cfg = lambda: omniglot_cfg(MTL_TINY, pretrain_iterations=6, iterations=6, hard_task_every=2)
    hard = []
    straight = Trainer(cfg(), tmp_path / "a", data_root=data_root, progress=False,
                       callbacks=(lambda it, rec: hard.append(it) if rec.get("hard_batch") else None,))
    summary_a = straight.fit()
    assert hard == [3, 5]  # one meta-batch in 2 is hard, after the first failures are known

    def kill(iteration, record):
        if record.get("phase", "meta") == kill_phase and iteration == kill_at:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        Trainer(cfg(), tmp_path / "b", data_root=data_root, progress=False, callbacks=(kill,)).fit()
    seen = []
    resumed = Trainer(cfg(), tmp_path / "b", data_root=data_root, progress=False, callbacks=(lambda it, rec: seen.append(rec.get("phase", "meta")),))
    summary_b = resumed.fit(resume=True)
    if kill_phase == "meta":
        assert "pretrain" not in seen  # the finished pretraining phase is not run again

    for k, v in straight.algorithm.state_dict().items():
        assert torch.equal(resumed.algorithm.state_dict()[k], v), k
    assert without_time(summary_a) == without_time(summary_b)
    assert read_log(tmp_path / "a" / "metrics.jsonl") == read_log(tmp_path / "b" / "metrics.jsonl")
    for name in ("best.safetensors", "last.safetensors", "pretrained.safetensors"):
        ca, cb = load_checkpoint(tmp_path / "a" / name), load_checkpoint(tmp_path / "b" / name)
        assert ca.weights.keys() == cb.weights.keys()
        assert all(torch.equal(ca.weights[k], cb.weights[k]) for k in ca.weights), name


def test_reptile_minibatches_come_from_the_trainer_generator_and_resume_exactly(tmp_path):
    def cfg():
        c = sinusoid_cfg(iterations=8, optimizer="sgd", lr=1.0, lr_anneal=True, checkpoint_every=4, val_every=100)
        c.algorithm = {"name": "reptile", "inner_lr": 0.01, "inner_steps": 3, "inner_optimizer": "adam", "inner_batch": 3}
        return c

    straight = Trainer(cfg(), tmp_path / "a", progress=False)
    straight.fit()

    def crash_at_6(iteration, record):
        if iteration == 6:
            raise RuntimeError("crash")

    with pytest.raises(RuntimeError):
        Trainer(cfg(), tmp_path / "b", progress=False, callbacks=(crash_at_6,)).fit()
    resumed = Trainer(cfg(), tmp_path / "b", progress=False)
    resumed.fit(resume=True)
    for k, v in straight.algorithm.state_dict().items():
        assert torch.equal(resumed.algorithm.state_dict()[k], v), k
    other = cfg()
    other.train.seed = 4
    different = Trainer(other, tmp_path / "c", progress=False)
    different.fit()
    assert not all(torch.equal(different.algorithm.state_dict()[k], v) for k, v in straight.algorithm.state_dict().items())


def test_validate_first_scores_the_starting_weights(tmp_path):
    """train.validate_first: iteration 0 is validated and can be best; training itself is unchanged."""
    plain = Trainer(sinusoid_cfg(iterations=6), tmp_path / "plain", progress=False)
    plain.fit()
    first = Trainer(sinusoid_cfg(iterations=6, validate_first=True), tmp_path / "first", progress=False)
    untrained = Trainer(sinusoid_cfg(), tmp_path / "untrained", progress=False).validate().mean
    first.fit()
    log = read_log(tmp_path / "first" / "metrics.jsonl")
    assert log[0] == {"iteration": 0, "val_mse": pytest.approx(untrained), "val_ci95": pytest.approx(log[0]["val_ci95"])}
    assert log[1:] == read_log(tmp_path / "plain" / "metrics.jsonl")
    for k, v in plain.algorithm.state_dict().items():  # validation draws nothing from the training generator
        assert torch.equal(first.algorithm.state_dict()[k], v), k

    worse = sinusoid_cfg(iterations=6, validate_first=True, lr=1.0)  # every step makes it worse: the start stays best
    summary = Trainer(worse, tmp_path / "worse", progress=False).fit()
    assert summary["best_iteration"] == 0 and summary["best_score"] == pytest.approx(untrained)
    assert load_checkpoint(tmp_path / "worse" / "best.safetensors").meta["iteration"] == 0

    again = Trainer(sinusoid_cfg(iterations=8, validate_first=True), tmp_path / "first", progress=False)
    again.fit(resume=True)  # a resumed run does not validate iteration 0 again
    assert [r["iteration"] for r in read_log(tmp_path / "first" / "metrics.jsonl")].count(0) == 1
