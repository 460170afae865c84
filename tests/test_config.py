"""Run configs: validation errors name the key; every named config loads and builds."""
import pytest
import torch

from learnfast.algorithms import ALGORITHMS
from learnfast.rl import RL_DATASETS
from learnfast.train.build import build_algorithm, metric_name
from learnfast.train.config import ConfigError, RunConfig, list_configs, load_config
from conftest import skip_without_simulators


def write(tmp_path, text, name="cfg.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_unknown_top_level_key(tmp_path):
    path = write(tmp_path, '[algorithm]\nname = "maml"\n[trian]\nways = 5\n')
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['trian'\]"):
        load_config(path)


def test_unknown_section_key(tmp_path):
    path = write(tmp_path, '[algorithm]\nname = "maml"\n[train]\nwayz = 5\n')
    with pytest.raises(ConfigError, match=r"\[train\]: unknown key\(s\) \['wayz'\]"):
        load_config(path)


@pytest.mark.parametrize("line, key", [('ways = "five"', "ways"), ("lr = \"fast\"", "lr"), ("shots = 1.5", "shots")])
def test_wrong_type(tmp_path, line, key):
    path = write(tmp_path, f'[algorithm]\nname = "maml"\n[train]\n{line}\n')
    with pytest.raises(ConfigError, match=rf"{key} = .* should be of type"):
        load_config(path)


def test_int_accepted_for_float(tmp_path):
    cfg = load_config(write(tmp_path, '[algorithm]\nname = "maml"\n[train]\nlr = 1\n'))
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)


def test_section_must_be_a_table(tmp_path):
    with pytest.raises(ConfigError, match="must be a table"):
        load_config(write(tmp_path, 'train = 3\n[algorithm]\nname = "maml"\n'))


def test_algorithm_needs_name(tmp_path):
    with pytest.raises(ConfigError, match=r"\[algorithm\] needs a `name`"):
        load_config(write(tmp_path, "[algorithm]\ninner_lr = 0.4\n"))


def test_invalid_toml(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[train\nways = 5\n"))


def test_missing_config_lists_named_ones():
    with pytest.raises(ConfigError, match="no named config; named configs: .*maml-sinusoid"):
        load_config("no-such-config")


def test_name_defaults_to_file_stem(tmp_path):
    cfg = load_config(write(tmp_path, '[algorithm]\nname = "protonet"\n', name="my-run.toml"))
    assert cfg.name == "my-run" and cfg.algorithm == {"name": "protonet"}


def test_base_config_keys_are_replaced_key_by_key(tmp_path):
    write(tmp_path, 'name = "parent-run"\n[algorithm]\nname = "maml"\ninner_lr = 0.4\n[train]\nways = 20\nlr = 0.01\n', name="parent.toml")
    cfg = load_config(write(tmp_path, 'base = "parent"\n[algorithm]\ninner_lr = 0.1\n[train]\nlr = 0.5\n', name="child.toml"))
    assert cfg.name == "child"  # never inherited
    assert cfg.algorithm == {"name": "maml", "inner_lr": 0.1}
    assert (cfg.train.ways, cfg.train.lr) == (20, 0.5)


def test_base_can_be_a_named_config(tmp_path):
    child = load_config(write(tmp_path, 'base = "maml-omniglot-5w1s"\n[algorithm]\nfirst_order = true\n'))
    parent = load_config("maml-omniglot-5w1s")
    assert child.algorithm == {**parent.algorithm, "first_order": True}
    assert child.train == parent.train and child.model == parent.model


def test_base_errors_name_the_file_and_the_fix(tmp_path):
    write(tmp_path, 'base = "b"\n', name="a.toml")
    write(tmp_path, 'base = "a.toml"\n', name="b.toml")
    with pytest.raises(ConfigError, match="loops back to itself"):
        load_config(tmp_path / "a.toml")
    with pytest.raises(ConfigError, match=r"c.toml: base = 'missing': no config file 'missing'"):
        load_config(write(tmp_path, 'base = "missing"\n', name="c.toml"))
    with pytest.raises(ConfigError, match="should be a config name or a TOML path"):
        load_config(write(tmp_path, "base = 3\n", name="d.toml"))


def test_override_validates():
    cfg = RunConfig()
    cfg.override("train", "ways", 20)
    assert cfg.train.ways == 20
    with pytest.raises(ConfigError, match="unknown key"):
        cfg.override("train", "wayz", 20)
    with pytest.raises(ConfigError, match="ways = 'x' should be of type int"):
        cfg.override("train", "ways", "x")
    cfg.override("algorithm", "inner_lr", 0.1)
    assert cfg.algorithm["inner_lr"] == 0.1


def test_round_trip_through_dict():
    cfg = load_config("maml-omniglot-5w1s")
    again = RunConfig.from_dict(cfg.to_dict())
    assert again == cfg


def test_named_configs_exist():
    names = list_configs()
    assert {"maml-omniglot-5w1s", "maml-sinusoid", "protonet-omniglot-5w1s"} <= set(names)


@pytest.mark.parametrize("name", list_configs())
def test_every_named_config_loads_and_builds(name):
    cfg = load_config(name)
    assert cfg.name == name
    skip_without_simulators(cfg.data.dataset)
    algorithm = build_algorithm(cfg)
    assert isinstance(algorithm, ALGORITHMS[cfg.algorithm["name"]])
    assert metric_name(cfg) == {"sinusoid": "mse", "movielens-100k": "mse", "quadratic": "final_loss", "mnist1d": "final_loss",
                                 **dict.fromkeys(RL_DATASETS, "return")}.get(cfg.data.dataset, "accuracy")
    assert sum(p.numel() for p in algorithm.parameters()) > 0


def test_build_is_seeded():
    cfg = load_config("maml-sinusoid")
    a, b = build_algorithm(cfg), build_algorithm(cfg)
    c = build_algorithm(cfg, seed=cfg.train.seed + 1)
    for (k, v), (_, w), (_, u) in zip(a.state_dict().items(), b.state_dict().items(), c.state_dict().items()):
        assert torch.equal(v, w), k
    assert any(not torch.equal(v, u) for v, u in zip(a.state_dict().values(), c.state_dict().values()))


def test_build_does_not_touch_global_rng():
    state = torch.random.get_rng_state()
    build_algorithm(load_config("maml-sinusoid"))
    assert torch.equal(state, torch.random.get_rng_state())


def test_maml_eval_ways_must_match_train_ways():
    cfg = load_config("maml-omniglot-5w1s")
    cfg.eval.ways = 20
    with pytest.raises(ConfigError, match=r"eval.ways must match \(got 20\)"):
        build_algorithm(cfg)


def test_protonet_eval_ways_may_differ():
    cfg = load_config("protonet-omniglot-20w1s")
    assert cfg.train.ways != cfg.eval.ways
    assert isinstance(build_algorithm(cfg), ALGORITHMS["protonet"])


def test_build_errors():
    with pytest.raises(ConfigError, match="unknown algorithm 'nope'"):
        build_algorithm(RunConfig(algorithm={"name": "nope"}))
    cfg = RunConfig(algorithm={"name": "maml", "inner_lr": 0.1, "momentum": 0.9})
    with pytest.raises(ConfigError, match=r"does not take \['momentum'\]"):
        build_algorithm(cfg)
    cfg = RunConfig(algorithm={"name": "protonet"})
    cfg.data.dataset, cfg.model.backbone = "sinusoid", "mlp"
    with pytest.raises(ConfigError, match="classification method"):
        build_algorithm(cfg)
    cfg = RunConfig()
    cfg.data.dataset = "mnist"
    with pytest.raises(ConfigError, match="unknown dataset 'mnist'"):
        build_algorithm(cfg)
    cfg = RunConfig()
    cfg.model.backbone = "resnet"
    with pytest.raises(ValueError, match="unknown backbone 'resnet'"):
        build_algorithm(cfg)


def test_bool_is_not_an_int(tmp_path):
    with pytest.raises(ConfigError, match="ways"):
        load_config(write(tmp_path, '[algorithm]\nname = "maml"\n[train]\nways = true\n'))


def test_optional_field_type_checked(tmp_path):
    with pytest.raises(ConfigError, match="hidden"):
        load_config(write(tmp_path, '[algorithm]\nname = "maml"\n[model]\nhidden = "wide"\n'))
