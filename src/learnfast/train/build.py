"""From a RunConfig to live objects: the algorithm (with its backbone) and the task sources."""
from __future__ import annotations

import inspect
import typing
from pathlib import Path

import torch

from ..algorithms import ALGORITHMS, Algorithm
from ..data.omniglot import omniglot_split
from ..data.regression import SinusoidTasks
from ..episodes import EpisodeSampler, EpisodeSpec
from ..data.clinc150 import clinc150_split
from ..models import TEXT_BACKBONES, Frozen, build_backbone, unwrap
from ..models.text import LENGTH as TEXT_LENGTH
from ..models.sentence import sentence_embeddings
from ..models.text import hash_ngrams
from ..optim.families import PROBLEM_DATASETS, problem_source
from .checkpoint import load_checkpoint
from .config import ConfigError, RunConfig, check_range, hint_name, matches_hint
from .pretrain import ClassBatches

DATASETS = {
    "omniglot": "Omniglot 28x28 characters; splits: vinyals (1100/100/423 characters + rotations), lake (background/evaluation)",
    "sinusoid": "sinusoid regression y = A sin(x - phase), the MAML protocol",
    "clinc150": "CLINC150 intents (texts, 150 per intent); splits: intents (100/20/30 intents), domains (6/1/3 domains)",
    **PROBLEM_DATASETS,
}
REGRESSION = {"sinusoid"}
TEXT = {"clinc150"}
INPUT_SHAPES = {"omniglot": (1, 28, 28), "sinusoid": (1,), "clinc150": (TEXT_LENGTH,)}  # clinc150: text-hashing's ids
# ranges of [algorithm] arguments, by name: one spelling per concept across the algorithms
COUNTS = ("ways", "read_heads", "memory_slots", "memory_width", "controller_size", "relation_hidden",
          "relation_channels", "generator_hidden", "base_hidden", "cg_steps")
ARGUMENT_RANGES = {
    **{name: {"min": 1} for name in COUNTS},
    "inner_steps": {"min": 0}, "eval_inner_steps": {"min": 0}, "fce_steps": {"min": 0},
    "inner_lr": {"min": 0.0}, "cg_damping": {"min": 0.0}, "gamma": {"min": 0.0},
    "implicit_lambda": {"positive": True}, "scale": {"positive": True}, "metric_scale": {"positive": True},
    "attention_scale": {"positive": True}, "initial_strength": {"positive": True},
}


def metric_name(cfg: RunConfig) -> str:
    if cfg.data.dataset in PROBLEM_DATASETS:
        return "final_loss"  # of a learned optimizer's runs; lower is better
    return "mse" if cfg.data.dataset in REGRESSION else "accuracy"


def build_algorithm(cfg: RunConfig, seed: int | None = None) -> Algorithm:
    """The configured algorithm with a freshly initialised backbone (initialised from ``seed``)."""
    name = cfg.algorithm.get("name")
    if name not in ALGORITHMS:
        raise ConfigError(f"unknown algorithm {name!r}; registered: {sorted(ALGORITHMS)}")
    if cfg.data.dataset not in DATASETS:
        raise ConfigError(f"unknown dataset {cfg.data.dataset!r}; available: {sorted(DATASETS)}")
    cls = ALGORITHMS[name]
    args = {k: v for k, v in cfg.algorithm.items() if k != "name"}
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "model"}
    unknown = set(args) - accepted
    if unknown:
        raise ConfigError(f"[algorithm] {name} does not take {sorted(unknown)}; it takes {sorted(accepted)}")
    check_algorithm_args(cls, args)
    if cls.learned_optimizer != (cfg.data.dataset in PROBLEM_DATASETS):
        raise ConfigError(f"{name} {'learns an optimizer from optimization problems' if cls.learned_optimizer else 'is a few-shot method'}; "
                          f"dataset {cfg.data.dataset!r} does not fit it (problem data sets: {sorted(PROBLEM_DATASETS)}, for algorithm l2o)")
    if cls.learned_optimizer:  # builds its optimizee and update rule from [algorithm]: no backbone
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.train.seed if seed is None else seed)
            return cls(**args)
    if "ways" in accepted:  # an algorithm that sizes its own output layer
        args.setdefault("ways", cfg.train.ways)
        if max(cfg.train.ways, cfg.eval.ways) > args["ways"]:
            raise ConfigError(
                f"{name} is built for ways={args['ways']} classes, fewer than train.ways={cfg.train.ways} / "
                f"eval.ways={cfg.eval.ways}; set [algorithm] ways to at least {max(cfg.train.ways, cfg.eval.ways)} or leave it unset"
            )
    regression = cfg.data.dataset in REGRESSION
    if regression and "loss" in accepted:
        args.setdefault("loss", "mse")
    elif regression:
        raise ConfigError(f"{name} is a classification method; it cannot run on the regression dataset {cfg.data.dataset!r}")
    if (cfg.model.backbone in TEXT_BACKBONES) != (cfg.data.dataset in TEXT):
        raise ConfigError(f"[model] backbone = {cfg.model.backbone!r} does not read {cfg.data.dataset!r} inputs; "
                          f"text data sets ({', '.join(sorted(TEXT))}) take {', '.join(TEXT_BACKBONES)}, the others an image or mlp backbone")
    in_shape = INPUT_SHAPES[cfg.data.dataset]
    out = 1 if regression else cfg.train.ways
    if cls.needs_head and not regression and cfg.eval.ways != cfg.train.ways:
        raise ConfigError(
            f"{name} has an output layer of train.ways={cfg.train.ways} units, so eval.ways must match (got {cfg.eval.ways}); "
            f"set both to the same value"
        )
    if cfg.model.freeze and not cls.freezable:
        frozen_ok = sorted(n for n, c in ALGORITHMS.items() if c.freezable)
        raise ConfigError(f"[model] freeze = true: {name} adapts or rescales its backbone, so it cannot be held fixed; freeze is for {', '.join(frozen_ok)}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.train.seed if seed is None else seed)
        model = build_backbone(cfg.model.backbone, in_shape, out if cls.needs_head else None, cfg.model.hidden)
        if cfg.model.freeze:
            model = Frozen(model)
        return cls(model=model, **args)  # layers the algorithm adds (relation module, LSTMs) are seeded too


def check_algorithm_args(cls: type[Algorithm], args: dict) -> None:
    """Each ``[algorithm]`` value against the constructor's annotation and ``ARGUMENT_RANGES``; the key is named."""
    hints = typing.get_type_hints(cls.__init__)
    for key, value in args.items():
        if key in hints and not matches_hint(value, hints[key]):
            raise ConfigError(f"[algorithm] {key} = {value!r} should be {hint_name(hints[key])} ({cls.__name__})")
        check_range(f"[algorithm] {key}", value, ARGUMENT_RANGES.get(key, {}))


def load_backbone(algorithm: Algorithm, path: str | Path) -> None:
    """Sets ``algorithm.model``'s weights from the backbone (``model.*``) of the learnfast checkpoint at ``path``.

    For ``[model] init``: e.g. a metric method's trained embedding, or the backbone a pretraining
    phase left (``runs/NAME/pretrained.safetensors``). Every backbone weight must be in the file with
    the same shape; only an output layer (``head.*``) may be missing or sized for another number of
    ways (e.g. a 20-way run started from a 5-way one), and then it keeps its fresh values.
    """
    weights = load_checkpoint(path).weights
    found = {}
    for key, value in weights.items():
        if key.startswith("model."):
            key = key[len("model."):]
            found[key[len("module."):] if key.startswith("module.") else key] = value  # a frozen backbone's keys
    target = unwrap(algorithm.model)
    if not found:
        raise ConfigError(f"[model] init = {str(path)!r}: the checkpoint has no backbone weights (model.*); use a checkpoint of an algorithm with a backbone")
    expected = target.state_dict()
    found = {k: v for k, v in found.items() if not (k.startswith("head.") and k in expected and v.shape != expected[k].shape)}
    missing = sorted(k for k in expected if k not in found and not k.startswith("head."))
    unexpected = sorted(k for k in found if k not in expected)
    mismatched = sorted(k for k in found if k in expected and found[k].shape != expected[k].shape)
    if missing or unexpected or mismatched:
        raise ConfigError(
            f"[model] init = {str(path)!r} does not fit this backbone ({type(target).__name__}): missing {missing}, "
            f"unexpected {unexpected}, different shapes {mismatched}; the checkpoint must come from the same [model] backbone and hidden"
        )
    with torch.no_grad():
        for key, value in found.items():
            expected[key].copy_(value)  # copy_ keeps each tensor's memory layout (channels-last weights stay so)


def to_float_image(x: torch.Tensor) -> torch.Tensor:
    """uint8 ``(..., 28, 28)`` -> float ``(..., 1, 28, 28)`` in [0, 1], ink = 1."""
    return (x.float() / 255.0).unsqueeze(-3)


def build_class_batches(cfg: RunConfig, root: str | Path | None = None) -> ClassBatches:
    """``(images, labels)`` mini-batches over every class of the train split, for the pretraining phase."""
    if cfg.data.dataset != "omniglot":
        raise ConfigError(f"[pretrain] trains a classifier over image classes; dataset {cfg.data.dataset!r} has none (use omniglot)")
    split = omniglot_split(cfg.data.split, "train", root)
    return ClassBatches(split.images, split.labels, transform=to_float_image)


def build_source(cfg: RunConfig, part: str, ways: int, shots: int, queries: int, root: str | Path | None = None):
    """A task source for ``part`` (train/val/test): ``.sample(batch_size, generator) -> Task``."""
    if cfg.data.dataset in PROBLEM_DATASETS:
        return problem_source(cfg.data.dataset, part)
    if cfg.data.dataset == "sinusoid":
        return SinusoidTasks(shots=shots, queries=queries)
    if cfg.data.dataset == "omniglot":
        split = omniglot_split(cfg.data.split, part, root)
        return EpisodeSampler(split.images, split.labels, EpisodeSpec(ways, shots, queries), transform=to_float_image)
    if cfg.data.dataset == "clinc150":
        texts = clinc150_split(cfg.data.split, part, root)
        spec = EpisodeSpec(ways, shots, queries)
        texts.check_episodes(spec)
        inputs = sentence_embeddings(texts.inputs) if cfg.model.backbone == "text-minilm" else hash_ngrams(texts.inputs)
        return EpisodeSampler(inputs, texts.labels, spec)
    raise ConfigError(f"unknown dataset {cfg.data.dataset!r}; available: {sorted(DATASETS)}")
