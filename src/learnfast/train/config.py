"""Run configuration: a TOML file (or flags) -> validated dataclasses. Unknown keys are errors."""
from __future__ import annotations

import collections.abc
import dataclasses
import math
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


class ConfigError(ValueError):
    """A config file or flag is malformed; the message names the key and the fix."""


def at_least(low: float, default: Any) -> Any:
    """A dataclass field whose value must be ``>= low`` (checked by ``_section`` with the key named)."""
    return field(default=default, metadata={"min": low})


def positive(default: Any) -> Any:
    """A dataclass field whose value must be ``> 0``."""
    return field(default=default, metadata={"positive": True})


@dataclass
class DataConfig:
    dataset: str = "omniglot"  # omniglot | sinusoid | clinc150 | custom (--data PATH)
    split: str = "vinyals"  # omniglot: vinyals | lake; clinc150: intents | domains; custom: classes
    path: str | None = None  # custom: a class-folder tree of images, a CSV/JSONL of texts, an .npz (learnfast.train.user_data)
    train_classes: list[str] | None = None  # custom: the class split (made by a seeded rule when unset)
    val_classes: list[str] | None = None
    test_classes: list[str] | None = None


@dataclass
class ModelConfig:
    backbone: str = "conv4"  # conv4 | conv4-strided | conv4-maps | mlp
    hidden: int | None = at_least(1, None)  # channels / units; backbone default when unset
    init: str | None = None  # a learnfast checkpoint whose backbone weights (model.*) start the run
    freeze: bool = False  # keep the backbone fixed: no gradients, never in training mode


@dataclass
class TrainConfig:
    ways: int = at_least(1, 5)
    shots: int = at_least(1, 1)
    queries: int = at_least(1, 15)
    meta_batch: int = at_least(1, 32)
    iterations: int = at_least(0, 1000)
    lr: float = positive(1e-3)  # outer learning rate
    optimizer: str = "adam"  # outer optimizer: adam | sgd
    momentum: float = at_least(0.0, 0.0)  # sgd only
    lr_halve_every: int = at_least(0, 0)  # halve the outer lr every this many iterations (0: never)
    lr_anneal: bool = False  # decay the outer lr linearly to 0 over the iterations (Reptile)
    hard_task_every: int = at_least(0, 0)  # every this many meta-batches, one of hard tasks (Sun et al. 2019; 0: never)
    precision: str = "fp32"  # fp32 | bf16 (autocast of the training step; evaluation stays fp32)
    val_every: int = at_least(1, 500)
    validate_first: bool = False  # also validate the starting weights (iteration 0) as a candidate for best.safetensors
    val_episodes: int = at_least(1, 200)
    checkpoint_every: int = at_least(1, 100)
    keep_every: int = at_least(0, 0)  # also keep the weights every this many iterations in snapshots/ (weight averaging; 0: never)
    seed: int = 0


@dataclass
class PretrainConfig:
    """A classifier pretraining phase over all meta-training classes, before meta-training (0 iterations: none)."""

    iterations: int = at_least(0, 0)
    batch_size: int = at_least(1, 64)
    lr: float = positive(1e-3)
    optimizer: str = "adam"  # adam | sgd
    momentum: float = at_least(0.0, 0.0)  # sgd only
    lr_anneal: bool = False  # decay the lr linearly to 0 over the iterations


@dataclass
class EvalConfig:
    ways: int = at_least(1, 5)
    shots: int = at_least(1, 1)
    queries: int = at_least(1, 15)
    episodes: int = at_least(1, 600)
    seed: int = 0


@dataclass
class RunConfig:
    """Everything that defines a run; stored inside every checkpoint."""

    name: str = "run"
    algorithm: dict[str, Any] = field(default_factory=lambda: {"name": "maml"})
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "config") -> "RunConfig":
        sections = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(raw) - set(sections)
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) {sorted(unknown)}; allowed top-level keys: {sorted(sections)}")
        kwargs: dict[str, Any] = {}
        for name, value in raw.items():
            if name == "name":
                kwargs[name] = str(value)
            elif name == "algorithm":
                if not isinstance(value, dict) or "name" not in value:
                    raise ConfigError(f"{source}: [algorithm] needs a `name` (e.g. name = \"maml\") plus that algorithm's arguments")
                kwargs[name] = dict(value)
            else:
                kwargs[name] = _section(sections[name].default_factory(), value, f"{source} [{name}]")  # type: ignore[misc]
        return cls(**kwargs)

    def override(self, section: str, key: str, value: Any) -> None:
        """Sets ``section.key`` (e.g. from a CLI flag), with the same validation as a file."""
        if section == "algorithm":
            self.algorithm[key] = value
            return
        target = getattr(self, section)
        _section(target, {key: value}, f"[{section}]", into=target)


def _section(default: Any, values: Any, where: str, into: Any = None) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"{where} must be a table of keys, got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(default)}
    unknown = set(values) - set(fields)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(fields)}")
    target = into if into is not None else default
    hints = typing.get_type_hints(type(default))
    for key, value in values.items():
        if not matches_hint(value, hints[key]):
            raise ConfigError(f"{where}: {key} = {value!r} should be {hint_name(hints[key])}")
        check_range(f"{where}: {key}", value, fields[key].metadata)
        setattr(target, key, float(value) if _accepts_float(hints[key]) and type(value) is int else value)
    return target


def check_range(what: str, value: Any, limits: Any) -> None:
    """Raises ``ConfigError`` naming ``what`` if a number is not finite or outside ``limits`` (``min`` / ``positive``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if not math.isfinite(value):
        raise ConfigError(f"{what} = {value!r} must be a finite number")
    if "min" in limits and value < limits["min"]:
        raise ConfigError(f"{what} = {value!r} must be >= {limits['min']}")
    if limits.get("positive") and value <= 0:
        raise ConfigError(f"{what} = {value!r} must be > 0")


def _options(hint: Any) -> tuple[Any, ...]:
    return typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)


def _accepts_float(hint: Any) -> bool:
    return float in _options(hint)


def matches_hint(value: Any, hint: Any) -> bool:
    """Does a TOML value fit a type annotation? ``int`` is accepted for ``float``, ``bool`` is not an ``int``,
    and a TOML array fits ``tuple[T, ...]`` / ``Sequence[T]`` / ``list[T]`` when every item fits ``T``."""
    if hint is Any:
        return True
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(matches_hint(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    origin = typing.get_origin(hint)
    if origin in (tuple, list, collections.abc.Sequence):
        item_hints = [h for h in typing.get_args(hint) if h is not Ellipsis] or [Any]
        return isinstance(value, (list, tuple)) and all(any(matches_hint(v, h) for h in item_hints) for v in value)
    if isinstance(value, bool):  # bool is an int subclass, but `ways = true` is a mistake
        return hint is bool
    if hint is float:
        return isinstance(value, (int, float))
    return isinstance(hint, type) and isinstance(value, hint)


def hint_name(hint: Any) -> str:
    """``int | None`` -> "an int or none", for error messages."""
    names = []
    for h in _options(hint):
        if h is type(None):
            names.append("none")
        elif typing.get_origin(h) in (tuple, list, collections.abc.Sequence):
            names.append("a list")
        else:
            names.append(f"of type {getattr(h, '__name__', str(h))}")
    return " or ".join(names)


def load_config(name_or_path: str | Path) -> RunConfig:
    """Loads a TOML config by path, or by name from the package's ``configs/`` folder.

    A config may start from another with ``base = "NAME"`` (a TOML path, taken relative to the
    file's own folder, or a named config): the base's tables are read first and each key the
    file sets replaces the base's value; the run's ``name`` is never inherited."""
    path = _config_path(name_or_path, None)
    raw = _read_with_bases(path, ())
    raw.setdefault("name", path.stem)
    return RunConfig.from_dict(raw, source=str(path))


def _config_path(name_or_path: str | Path, folder: Path | None) -> Path:
    nearby = [folder / str(name_or_path), folder / f"{name_or_path}.toml"] if folder else []
    for candidate in nearby + [Path(name_or_path), CONFIG_DIR / f"{name_or_path}.toml"]:
        if candidate.is_file():
            return candidate
    raise ConfigError(f"no config file {str(name_or_path)!r} and no named config; named configs: {', '.join(list_configs())}")


def _read_with_bases(path: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    """The raw tables of ``path`` on top of those of its ``base`` chain (a cycle is an error)."""
    if path.resolve() in chain:
        raise ConfigError(f"{path}: `base` chain loops back to itself: {' -> '.join(str(p) for p in chain + (path.resolve(),))}")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML ({err})") from err
    base = raw.pop("base", None)
    if base is None:
        return raw
    if not isinstance(base, str):
        raise ConfigError(f"{path}: base = {base!r} should be a config name or a TOML path (a string)")
    try:
        merged = _read_with_bases(_config_path(base, path.parent), chain + (path.resolve(),))
    except ConfigError as err:
        raise ConfigError(f"{path}: base = {base!r}: {err}") from err
    merged.pop("name", None)
    for key, value in raw.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def list_configs() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.toml"))
