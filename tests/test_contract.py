"""The algorithm contract, checked for every entry of the registry ``learnfast.algorithms.ALGORITHMS``."""
import copy
import inspect

import pytest
import torch

import learnfast as lf
from learnfast.algorithms import ALGORITHMS
from learnfast.train.build import build_algorithm
from learnfast.train.config import RunConfig
from conftest import blob_tasks, image_tasks

WAYS, DIM, EMBED = 3, 8, 8
# Registered algorithms that do not learn few-shot tasks, with the test that checks their contract instead.
NOT_FEW_SHOT = {"l2o": "a learned optimizer meta-trains on optimization problems, not on few-shot tasks of a backbone; "
                       "tests/test_l2o_algorithm.py::test_contract_on_problems runs these checks on problems",
               "melu": "a recommender: its network embeds rating-log attributes (MeLUNet) and predicts ratings; "
                       "tests/test_melu.py::test_contract_on_rating_tasks runs these checks on per-user rating tasks",
               "maml-rl": "meta-RL learns a policy on task families (learnfast.rl), not few-shot tasks of a backbone; "
                          "tests/test_maml_rl.py::test_contract_and_seeding runs these checks on 2D navigation tasks",
               "reptile-rl": "meta-RL, as maml-rl: tests/test_maml_rl.py::test_contract_and_seeding covers it too"}
NAMES = sorted(name for name in ALGORITHMS if name not in NOT_FEW_SHOT)


def make(name, seed=0, backbone="mlp"):
    """A tiny instance of registered algorithm ``name`` (with a head only where it needs one).

    Algorithms that size their own output layer take ``ways``, which they get as from a config.
    """
    cls = ALGORITHMS[name]
    torch.manual_seed(seed)
    if backbone == "mlp":
        model = lf.MLP(in_features=DIM, hidden=(16,), out_features=WAYS if cls.needs_head else EMBED)
    else:
        model = lf.Conv4(hidden=4, out_features=WAYS if cls.needs_head else None, strided=backbone == "conv4-strided")
    sized = "ways" in inspect.signature(cls.__init__).parameters
    return cls(model=model, **({"ways": WAYS} if sized else {}))


# Parameters an algorithm keeps out of meta-training on purpose (prefix, reason); they must get no gradient.
FROZEN = {"mtl": ("model.", "the pretrained backbone is frozen; MTL meta-learns scales and shifts of it (Sun et al. 2019)")}


def frozen(algorithm):
    """Names of the parameters that are not meta-parameters."""
    return {k for k, _ in algorithm.named_parameters()} - set(algorithm.meta_params())


@pytest.mark.parametrize("name", NAMES)
def test_meta_parameters_are_all_parameters_but_the_declared_frozen_ones(name):
    algorithm = make(name)
    prefix = FROZEN[name][0] if name in FROZEN else None
    expected = {k for k, _ in algorithm.named_parameters() if prefix and k.startswith(prefix)}
    assert frozen(algorithm) == expected
    assert set(algorithm.meta_params()), "an algorithm needs meta-parameters"


def tasks(seed=0, size=4):
    return blob_tasks(size, torch.Generator().manual_seed(seed), ways=WAYS, shots=2, queries=4, dim=DIM)


def test_registry_is_a_plain_dict_of_algorithms():
    assert isinstance(ALGORITHMS, dict) and ALGORITHMS
    assert {"maml", "protonet"} <= set(ALGORITHMS)
    for cls in ALGORITHMS.values():
        assert issubclass(cls, lf.Algorithm)


@pytest.mark.parametrize("name", NAMES)
def test_builds_from_config(name):
    cfg = RunConfig(algorithm={"name": name})
    cfg.model.backbone, cfg.model.hidden = "conv4", 4
    algorithm = build_algorithm(cfg)
    assert isinstance(algorithm, ALGORITHMS[name])
    batch = image_tasks(2, torch.Generator().manual_seed(0), ways=cfg.train.ways, shots=1, queries=2, dtype=torch.float32)
    assert algorithm(batch).shape == (2, cfg.train.ways * 2, cfg.train.ways)


@pytest.mark.parametrize("name", NAMES)
def test_finite_loss_and_gradient_reaches_every_meta_parameter(name):
    algorithm = make(name)
    out = algorithm.meta_loss(tasks())
    assert out.loss.dim() == 0 and torch.isfinite(out.loss)
    assert out.predictions.shape == (4, WAYS * 4, WAYS)
    out.loss.backward()
    for k, p in algorithm.meta_params().items():
        assert p.grad is not None, f"{k} got no gradient"
        assert torch.isfinite(p.grad).all(), k
        assert p.grad.abs().sum() > 0, f"{k} has an all-zero gradient"
    for k, p in algorithm.named_parameters():
        if k in frozen(algorithm):
            assert p.grad is None, f"{k} is frozen but got a gradient"


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("backbone", ["conv4", "conv4-strided"])
def test_gradient_reaches_conv_backbone(name, backbone):
    """With Conv4 every parameter gets a finite gradient; all are non-zero except the conv biases,
    which BatchNorm's mean subtraction cancels exactly in exact arithmetic."""
    algorithm = make(name, backbone=backbone)
    batch = image_tasks(2, torch.Generator().manual_seed(0), ways=WAYS, shots=2, queries=2, size=16, dtype=torch.float32)
    out = algorithm.meta_loss(batch)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    for k, p in algorithm.meta_params().items():
        assert p.grad is not None and torch.isfinite(p.grad).all(), k
        conv_bias = k.endswith(".0.bias") and ".features." in k  # MTL's shift.features.0.0.bias too
        if not conv_bias:
            assert p.grad.abs().sum() > 0, f"{k} has an all-zero gradient"
    assert all(p.grad is None for k, p in algorithm.named_parameters() if k in frozen(algorithm))


@pytest.mark.parametrize("name", NAMES)
def test_forward_does_not_mutate_meta_parameters(name):
    algorithm = make(name)
    before = copy.deepcopy(algorithm.state_dict())
    batch = tasks()
    algorithm(batch)
    algorithm.meta_loss(batch).loss.backward()
    algorithm.eval()
    algorithm(batch)
    after = algorithm.state_dict()
    assert before.keys() == after.keys()
    for k in before:
        assert torch.equal(before[k], after[k]), k


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_output(name):
    batch = tasks()
    a, b, c = make(name, seed=0), make(name, seed=0), make(name, seed=1)
    out_a, out_b = a(batch), b(batch)
    assert torch.equal(out_a, out_b)
    assert torch.equal(out_a, a(batch))  # no hidden state between calls
    assert torch.equal(a.meta_loss(batch).loss, b.meta_loss(batch).loss)
    assert not torch.equal(out_a, c(batch))


# Algorithms whose loss stays flat for longer than this test's 30 steps, with the test that shows they learn.
SLOW_TO_START = {
    "mann": "an item binds to the label shown one step later only after a 100-500 step plateau; "
            "tests/test_mann.py::test_learns_to_bind_items_to_labels_shown_one_step_later checks that it learns",
}


@pytest.mark.parametrize("name", NAMES)
def test_loss_goes_down_on_blobs(name):
    if name in SLOW_TO_START:
        pytest.skip(SLOW_TO_START[name])
    algorithm = make(name, seed=0)
    held_out = tasks(seed=1000, size=16)
    with torch.no_grad():
        before = algorithm.meta_loss(held_out).loss.item()
    opt = torch.optim.Adam(algorithm.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    for _ in range(30):
        batch = blob_tasks(8, g, ways=WAYS, shots=2, queries=4, dim=DIM)
        opt.zero_grad()
        algorithm.meta_loss(batch).loss.backward()
        opt.step()
    with torch.no_grad():
        after = algorithm.meta_loss(held_out).loss.item()
    assert after < 0.8 * before, (before, after)


@pytest.mark.parametrize("name", NAMES)
def test_rejects_unbatched_task(name):
    algorithm = make(name)
    with pytest.raises(ValueError, match="leading task dimension"):
        algorithm(lf.task_at(tasks(), 0))


def test_public_api_exports_exist():
    for name in lf.__all__:
        assert hasattr(lf, name), name
