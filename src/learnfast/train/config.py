"""Run configuration: a TOML file (or flags) -> validated dataclasses. Unknown keys are errors."""
from __future__ import annotations

import dataclasses
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


@dataclass
class DataConfig:
    dataset: str = "omniglot"  # omniglot | sinusoid
    split: str = "vinyals"  # omniglot: vinyals | lake


@dataclass
class ModelConfig:
    backbone: str = "conv4"  # conv4 | conv4-strided | conv4-maps | mlp
    hidden: int | None = None  # channels / units; backbone default when unset
    init: str | None = None  # a learnfast checkpoint whose backbone weights (model.*) start the run
    freeze: bool = False  # keep the backbone fixed: no gradients, never in training mode


@dataclass
class TrainConfig:
    ways: int = 5
    shots: int = 1
    queries: int = 15
    meta_batch: int = 32
    iterations: int = 1000
    lr: float = 1e-3  # outer learning rate
    optimizer: str = "adam"  # outer optimizer: adam | sgd
    momentum: float = 0.0  # sgd only
    lr_halve_every: int = 0  # halve the outer lr every this many iterations (0: never)
    lr_anneal: bool = False  # decay the outer lr linearly to 0 over the iterations (Reptile)
    hard_task_every: int = 0  # every this many meta-batches, one of hard tasks (Sun et al. 2019; 0: never)
    precision: str = "fp32"  # fp32 | bf16 (autocast of the training step; evaluation stays fp32)
    val_every: int = 500
    val_episodes: int = 200
    checkpoint_every: int = 100
    seed: int = 0


@dataclass
class PretrainConfig:
    """A classifier pretraining phase over all meta-training classes, before meta-training (0 iterations: none)."""

    iterations: int = 0
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adam"  # adam | sgd
    momentum: float = 0.0  # sgd only
    lr_anneal: bool = False  # decay the lr linearly to 0 over the iterations


@dataclass
class EvalConfig:
    ways: int = 5
    shots: int = 1
    queries: int = 15
    episodes: int = 600
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
        _section(target, {key: value}, f"--{key}", into=target)


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
        allowed = _allowed_types(hints[key])
        if not any(_is_instance(value, t) for t in allowed):
            names = " or ".join("none" if t is type(None) else t.__name__ for t in allowed)
            raise ConfigError(f"{where}: {key} = {value!r} should be of type {names}")
        setattr(target, key, float(value) if float in allowed and isinstance(value, int) else value)
    return target


def _allowed_types(hint: Any) -> tuple[type, ...]:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return typing.get_args(hint)
    return (hint,)


def _is_instance(value: Any, expected: type) -> bool:
    if isinstance(value, bool):  # bool is an int subclass, but `ways = true` is a mistake
        return expected is bool
    if expected is float:
        return isinstance(value, (int, float))
    return isinstance(value, expected)


def load_config(name_or_path: str | Path) -> RunConfig:
    """Loads a TOML config by path, or by name from the package's ``configs/`` folder."""
    path = Path(name_or_path)
    if not path.is_file():
        candidate = CONFIG_DIR / f"{name_or_path}.toml"
        if not candidate.is_file():
            raise ConfigError(f"no config file {str(name_or_path)!r} and no named config; named configs: {', '.join(list_configs())}")
        path = candidate
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML ({err})") from err
    raw.setdefault("name", path.stem)
    return RunConfig.from_dict(raw, source=str(path))


def list_configs() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.toml"))
