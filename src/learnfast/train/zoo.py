"""The model zoo folder: its checkpoints and their headline test scores (``zoo/index.toml``)."""
from __future__ import annotations

from pathlib import Path

from .config import ConfigError, tomllib

INDEX = "index.toml"


def zoo_index(folder: Path) -> dict[str, str]:
    """``{file name: headline}`` from ``folder/index.toml`` (tables keyed by file name, each with a ``headline``)."""
    path = folder / INDEX
    if not path.is_file():
        return {}
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: not valid TOML ({err})") from err
    bad = sorted(name for name, entry in raw.items() if not isinstance(entry, dict) or not isinstance(entry.get("headline"), str))
    if bad:
        raise ConfigError(f"{path}: entries {bad} need a `headline = \"...\"` string")
    return {name: entry["headline"] for name, entry in raw.items()}


def zoo_listing(folder: Path) -> dict[str, str]:
    """Every ``*.safetensors`` in ``folder`` with its headline (or a note that the index has none)."""
    headlines = zoo_index(folder)
    return {p.name: headlines.get(p.name, f"(no headline in {INDEX})") for p in sorted(folder.glob("*.safetensors"))}
