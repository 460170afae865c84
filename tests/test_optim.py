"""Training-phase settings: optimizer construction and schedules, the [pretrain] section, and the
``ways`` an algorithm that sizes its own head gets from the config."""
import pytest
import torch

from learnfast.algorithms import MTL
from learnfast.train.build import build_algorithm
from learnfast.train.config import ConfigError, PretrainConfig, RunConfig, TrainConfig, load_config
from learnfast.train.optim import make_optimizer, scheduled_lr


def test_schedules():
    anneal = TrainConfig(lr=0.1, lr_anneal=True)
    assert [scheduled_lr(anneal, i, 5) for i in range(5)] == pytest.approx([0.1, 0.08, 0.06, 0.04, 0.02])
    halve = TrainConfig(lr=0.1, lr_halve_every=2)
    assert [scheduled_lr(halve, i, 5) for i in range(5)] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.025])
    assert scheduled_lr(TrainConfig(lr=0.1), 3, 5) == 0.1
    assert scheduled_lr(PretrainConfig(lr=0.2, lr_anneal=True), 1, 4) == pytest.approx(0.15)


def test_make_optimizer():
    params = [torch.nn.Parameter(torch.zeros(3))]
    sgd = make_optimizer(params, TrainConfig(optimizer="sgd", lr=0.5, momentum=0.9))
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["momentum"] == 0.9 and sgd.param_groups[0]["lr"] == 0.5
    assert isinstance(make_optimizer(params, TrainConfig()), torch.optim.Adam)


def test_pretrain_section_from_toml(tmp_path):
    path = tmp_path / "two-phase.toml"
    path.write_text('[algorithm]\nname = "baseline"\n[pretrain]\niterations = 100\nbatch_size = 32\noptimizer = "sgd"\n'
                    'momentum = 0.9\nlr = 0.1\n[train]\noptimizer = "sgd"\nlr_anneal = true\n')
    cfg = load_config(path)
    assert (cfg.pretrain.iterations, cfg.pretrain.batch_size, cfg.pretrain.optimizer, cfg.pretrain.momentum) == (100, 32, "sgd", 0.9)
    assert cfg.train.optimizer == "sgd" and cfg.train.lr_anneal is True
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    path.write_text('[algorithm]\nname = "baseline"\n[pretrain]\nepochs = 3\n')
    with pytest.raises(ConfigError, match=r"\[pretrain\]: unknown key\(s\) \['epochs'\]"):
        load_config(path)


def test_configs_written_before_the_new_keys_still_load_the_same():
    """Checkpoints of runs started before [pretrain] and the optimizer keys existed must resume."""
    old = RunConfig().to_dict()
    del old["pretrain"]
    for key in ("optimizer", "momentum", "lr_anneal", "hard_task_every"):
        del old["train"][key]
    assert RunConfig.from_dict(old) == RunConfig()


def test_an_algorithm_that_sizes_its_head_gets_train_ways():
    cfg = RunConfig(algorithm={"name": "mtl"})
    cfg.model.hidden, cfg.train.ways, cfg.eval.ways = 4, 7, 7
    algorithm = build_algorithm(cfg)
    assert isinstance(algorithm, MTL) and algorithm.ways == 7 and algorithm.head.weight.shape == (7, 4)
    cfg.algorithm["ways"] = 5
    with pytest.raises(ConfigError, match=r"mtl is built for ways=5 classes, fewer than train.ways=7 / eval.ways=7"):
        build_algorithm(cfg)
