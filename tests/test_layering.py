"""Layering (DESIGN.md): lower layers never import higher ones, read off every module's imports with ``ast``.

Layers, lowest first: the core (tasks, episodes, functional, inner, implicit, batchnorm, protocol,
_types, host_memory, data/*, models/*, optim/*, rl/*, recommend/*); algorithms/*; train/*; the entry points (api, cli, demo, __main__,
the package's ``__init__``). A module may import its own layer and the ones below, never one above;
function-level imports count too (a function-level import that dodges a cycle is still an upward
edge). A new top-level module must be placed in a layer here.
"""
import ast
import subprocess
import sys

import pytest

from conftest import REPO_ROOT

PACKAGE = "learnfast"
SOURCE = REPO_ROOT / "src" / PACKAGE
LAYERS = (
    {"tasks", "episodes", "functional", "inner", "implicit", "batchnorm", "protocol", "_types", "host_memory", "data", "models", "optim", "rl", "recommend"},
    {"algorithms"},
    {"train"},
    {"selection"},
    {"api", "cli", "demo", "__init__", "__main__"},
)
NAMES = ("core", "algorithms", "train", "selection", "entry points")


def module_name(path) -> str:
    """``src/learnfast/data/lake_runs.py`` -> ``learnfast.data.lake_runs``; a package's ``__init__.py`` -> the package."""
    parts = path.relative_to(SOURCE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    """Whether ``name`` (e.g. ``learnfast.train``) is one of the package's modules or sub-packages."""
    path = SOURCE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or path.is_dir()


def imported_modules(source: str, module: str, is_package: bool) -> set[str]:
    """Absolute names of the modules ``source`` (the text of ``module``) imports, at any depth of the file.

    ``from X import name`` counts as importing ``X``, and ``X.name`` too where that is a module; ``from
    .. import name`` with no module counts as importing the package itself only when ``name`` is not a module.
    """
    found = set()
    package = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
            target = ".".join(filter(None, (base, node.module)))
            submodules = {name for name in (f"{target}.{alias.name}" for alias in node.names) if is_module(name)}
            found.update(submodules)
            if node.module or len(submodules) < len(node.names):
                found.add(target)
    return found


def layer(module: str) -> int | None:
    """The layer of a ``learnfast`` module (by its first component below the package), or ``None`` if unplaced."""
    parts = module.split(".")
    head = parts[1] if len(parts) > 1 else "__init__"
    return next((i for i, names in enumerate(LAYERS) if head in names), None)


def own_modules():
    return sorted(SOURCE.rglob("*.py"))


def test_every_module_is_placed_in_a_layer():
    unplaced = [module_name(p) for p in own_modules() if layer(module_name(p)) is None]
    assert not unplaced, f"place these modules in a layer of tests/test_layering.py LAYERS: {unplaced}"


def test_lower_layers_never_import_higher_ones():
    violations = []
    for path in own_modules():
        module = module_name(path)
        own = layer(module)
        for target in sorted(imported_modules(path.read_text(), module, path.name == "__init__.py")):
            if target != PACKAGE and not target.startswith(PACKAGE + "."):
                continue
            other = layer(target)
            if other is not None and own is not None and other > own:
                violations.append(f"{module} ({NAMES[own]}) imports {target} ({NAMES[other]})")
    assert not violations, "imports against the layering (DESIGN.md):\n" + "\n".join(violations)


def test_imports_are_resolved_as_python_does():
    source = "from ..train.evaluate import EvalResult\nfrom .omniglot import x\ndef f():\n    from .. import cli\n"
    found = imported_modules(source, "learnfast.data.lake_runs", is_package=False)
    assert found == {"learnfast.train.evaluate", "learnfast.data.omniglot", "learnfast.cli"}
    assert imported_modules("from .. import tasks\n", "learnfast.data.regression", is_package=False) == {"learnfast.tasks"}
    assert imported_modules("from .. import MAML\n", "learnfast.data.regression", is_package=False) == {"learnfast"}
    assert "learnfast.algorithms.mann" in imported_modules("from .mann import MANN\n", "learnfast.algorithms", is_package=True)
    assert layer("learnfast.train.evaluate") == 2 and layer("learnfast") == 4 and layer("learnfast.data.lake_runs") == 0


@pytest.mark.parametrize("module", ["learnfast.algorithms.mann", "learnfast.data.lake_runs"])
def test_imports_first_in_a_fresh_interpreter(module):
    """No import cycle: each module loads first, before anything else of the package has been imported."""
    result = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
