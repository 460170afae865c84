"""From a RunConfig to live objects: the algorithm (with its backbone) and the task sources."""
from __future__ import annotations

import functools
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
from ..rl import RL_DATASETS, RLTasks, task_family
from ..data.labelled import LabelledData
from ..data.cold_start import SCENARIOS, ColdStartTasks, cold_start_split
from ..data.interactions import GENRES, MOVIELENS_ITEM_FIELDS, MOVIELENS_USER_FIELDS, movielens_100k
from ..models.melu import MeLUNet
from .checkpoint import load_checkpoint
from .config import ConfigError, RunConfig, check_range, hint_name, matches_hint
from .pretrain import ClassBatches
from .user_data import check_custom, custom_input_shape, custom_part, data_kind

DATASETS = {
    "omniglot": "Omniglot 28x28 characters; splits: vinyals (1100/100/423 characters + rotations), lake (background/evaluation)",
    "sinusoid": "sinusoid regression y = A sin(x - phase), the MAML protocol",
    "clinc150": "CLINC150 intents (texts, 150 per intent); splits: intents (100/20/30 intents), domains (6/1/3 domains)",
    "movielens-100k": "MovieLens-100K ratings, each user a task (MeLU); splits = the scenario validated on: " + " | ".join(SCENARIOS),
    "custom": "your own classes (`learnfast train CONFIG --data PATH`): class folders of images, a CSV/JSONL of texts or an .npz",
    **PROBLEM_DATASETS,
    **RL_DATASETS,
}
RECOMMENDATION = {"movielens-100k"}
MELU_BACKBONES = ("melu", "melu-items")
MOVIELENS_ITEMS = 1682
REGRESSION = {"sinusoid", *RECOMMENDATION}
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


def is_text(cfg: RunConfig) -> bool:
    """Does ``cfg``'s data set hold texts (CLINC150, or the user's CSV / JSONL)?"""
    return cfg.data.dataset in TEXT or (cfg.data.dataset == "custom" and data_kind(cfg.data.path) == "text")


def input_shape(cfg: RunConfig) -> tuple[int, ...]:
    """One input's shape (no batch dimension) as the backbone sees it."""
    if cfg.data.dataset == "custom":
        return custom_input_shape(cfg)
    return INPUT_SHAPES[cfg.data.dataset]


def metric_name(cfg: RunConfig) -> str:
    if cfg.data.dataset in PROBLEM_DATASETS:
        return "final_loss"  # of a learned optimizer's runs; lower is better
    if cfg.data.dataset in RL_DATASETS:
        return "return"  # a meta-RL task's average return after adaptation; higher is better
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
    reserved = {"self", "model"} | ({"env", "hidden"} if cls.reinforcement else set())  # RL: from [data] and [model]
    accepted = set(inspect.signature(cls.__init__).parameters) - reserved
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
    if cls.reinforcement != (cfg.data.dataset in RL_DATASETS):
        raise ConfigError(f"{name} {'learns a policy on a meta-RL task family' if cls.reinforcement else 'is not a meta-RL method'}; "
                          f"dataset {cfg.data.dataset!r} does not fit it (meta-RL task families: {sorted(RL_DATASETS)}, for algorithms "
                          f"{', '.join(sorted(n for n, c in ALGORITHMS.items() if c.reinforcement))})")
    if cls.reinforcement:  # builds its Gaussian MLP policy for the family: [model] gives its width only
        if cfg.model.backbone != "mlp" or cfg.model.freeze:
            raise ConfigError(f"{name} trains a Gaussian MLP policy: set [model] backbone = \"mlp\" (hidden = its width) and freeze = false")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.train.seed if seed is None else seed)
            return cls(env=cfg.data.dataset, **({} if cfg.model.hidden is None else {"hidden": cfg.model.hidden}), **args)
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
    check_custom(cfg)
    if (cfg.model.backbone in TEXT_BACKBONES) != is_text(cfg):
        what = f"the texts of {cfg.data.path}" if cfg.data.dataset == "custom" and is_text(cfg) else f"{cfg.data.dataset!r} inputs"
        raise ConfigError(f"[model] backbone = {cfg.model.backbone!r} does not read {what}; "
                          f"texts ({', '.join(sorted(TEXT))}, a CSV / JSONL) take {', '.join(TEXT_BACKBONES)}, the others an image or mlp backbone")
    if (cfg.model.backbone in MELU_BACKBONES) != (cfg.data.dataset in RECOMMENDATION):
        raise ConfigError(f"[model] backbone = {cfg.model.backbone!r} does not fit dataset {cfg.data.dataset!r}: rating data sets "
                          f"({', '.join(sorted(RECOMMENDATION))}) take backbone {' or '.join(MELU_BACKBONES)}, and those only them")
    in_shape = () if cfg.data.dataset in RECOMMENDATION else input_shape(cfg)
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
        if cfg.data.dataset in RECOMMENDATION:
            model = melu_network(cfg)
        else:
            model = build_backbone(cfg.model.backbone, in_shape, out if cls.needs_head else None, cfg.model.hidden)
        if cfg.model.freeze:
            model = Frozen(model)
        return cls(model=model, **args)  # layers the algorithm adds (relation module, LSTMs) are seeded too


def melu_network(cfg: RunConfig) -> MeLUNet:
    """MeLU's network for MovieLens-100K's attributes; ``[model] hidden`` sets both decision layers (paper: 64);
    backbone ``melu-items`` adds an item-identity embedding (``MeLUNet(item_ids=...)``)."""
    width = cfg.model.hidden or 64
    return MeLUNet([v for _, v in MOVIELENS_USER_FIELDS], [v for _, v in MOVIELENS_ITEM_FIELDS], GENRES, hidden=(width, width),
                   item_ids=MOVIELENS_ITEMS if cfg.model.backbone == "melu-items" else 0)


@functools.lru_cache(maxsize=2)
def movielens_split(root: str | None):
    """MovieLens-100K's time split (``learnfast.data.cold_start``), read once per process."""
    return cold_start_split(movielens_100k(root))


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
    """``(inputs, labels)`` mini-batches over every class of the train split, for the pretraining phase."""
    if cfg.data.dataset == "omniglot":
        split = omniglot_split(cfg.data.split, "train", root)
        return ClassBatches(split.images, split.labels, transform=to_float_image)
    if cfg.data.dataset in TEXT or cfg.data.dataset == "custom":
        data = labelled_inputs(cfg, "train", root)
        return ClassBatches(data.inputs, data.labels)
    raise ConfigError(f"[pretrain] trains a classifier over classes; dataset {cfg.data.dataset!r} has none (use omniglot, clinc150 or --data)")


def encode_texts(cfg: RunConfig, texts: list[str]) -> torch.Tensor:
    """Texts as the backbone reads them: MiniLM embeddings ``(n, 384)`` (cached) or hashed n-gram ids ``(n, LENGTH)``."""
    return sentence_embeddings(texts) if cfg.model.backbone == "text-minilm" else hash_ngrams(texts)


def labelled_inputs(cfg: RunConfig, part: str, root: str | Path | None = None) -> LabelledData:
    """The ``part`` classes of a text or custom data set, inputs ready for the backbone (texts encoded)."""
    if cfg.data.dataset == "custom":
        return custom_part(cfg, part, encode=lambda texts: encode_texts(cfg, texts))
    texts = clinc150_split(cfg.data.split, part, root)
    return LabelledData(encode_texts(cfg, texts.inputs), texts.labels, texts.class_names, texts.source)


def build_source(cfg: RunConfig, part: str, ways: int, shots: int, queries: int, root: str | Path | None = None):
    """A task source for ``part`` (train/val/test): ``.sample(batch_size, generator) -> Task``."""
    if cfg.data.dataset in PROBLEM_DATASETS:
        return problem_source(cfg.data.dataset, part)
    if cfg.data.dataset in RL_DATASETS:
        return RLTasks(task_family(cfg.data.dataset), part)
    if cfg.data.dataset == "sinusoid":
        return SinusoidTasks(shots=shots, queries=queries)
    if cfg.data.dataset in RECOMMENDATION:
        if cfg.data.split not in SCENARIOS:
            raise ConfigError(f"[data] split = {cfg.data.split!r}: a rating data set's split is the scenario validated and "
                              f"evaluated on, one of {', '.join(SCENARIOS)}")
        return ColdStartTasks(movielens_split(None if root is None else str(root)), part, cfg.data.split, shots, queries)
    if cfg.data.dataset == "omniglot":
        split = omniglot_split(cfg.data.split, part, root)
        return EpisodeSampler(split.images, split.labels, EpisodeSpec(ways, shots, queries), transform=to_float_image)
    if cfg.data.dataset in TEXT or cfg.data.dataset == "custom":
        data = labelled_inputs(cfg, part, root)
        return data.sampler(EpisodeSpec(ways, shots, queries))
    raise ConfigError(f"unknown dataset {cfg.data.dataset!r}; available: {sorted(DATASETS)}")
