"""Every docstring example in the package runs (doctest), against a small shared namespace.

Examples may use ``torch``, ``F``, ``lf`` and every public ``lf`` name, plus ``batch`` (two 5-way
1-shot tasks of 28x28 images, 2 queries per class), ``model`` / ``x`` / ``y`` / ``query_x`` /
``query_y`` (a small classifier and one task's tensors) and ``pretrained_conv4``.
"""
import doctest
import importlib
import importlib.util
import pkgutil

import pytest
import torch
import torch.nn.functional as F

import learnfast as lf
from conftest import REPO_ROOT, image_tasks

HAS_SKLEARN = importlib.util.find_spec("sklearn") is not None  # learnfast.selection needs the [select] extra
MODULES = sorted(m.name for m in pkgutil.walk_packages(lf.__path__, "learnfast.")
                 if not m.name.endswith("__main__") and (HAS_SKLEARN or not m.name.startswith("learnfast.selection")))


def namespace() -> dict:
    generator = torch.Generator().manual_seed(0)
    batch = image_tasks(2, generator, ways=5, shots=1, queries=2, dtype=torch.float32)
    task = lf.task_at(batch, 0)
    return {
        "torch": torch, "F": F, "lf": lf, **{name: getattr(lf, name) for name in lf.__all__},
        "batch": batch, "model": lf.Conv4(out_features=5, strided=True), "x": task.support_x, "y": task.support_y,
        "query_x": task.query_x, "query_y": task.query_y, "pretrained_conv4": lf.Conv4(),
    }


NEEDS_DATA = {"learnfast.api", "learnfast.data.alphabets"}  # examples that read Omniglot, run from the repository root


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples_run(module, request, monkeypatch):
    if module in NEEDS_DATA:
        request.getfixturevalue("data_root")  # skips without the Omniglot zips
        monkeypatch.chdir(REPO_ROOT)
    tests = doctest.DocTestFinder().find(importlib.import_module(module), extraglobs=namespace())
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {module} failed (output above)"


def test_examples_exist():
    finder = doctest.DocTestFinder()
    examples = sum(len(t.examples) for m in MODULES for t in finder.find(importlib.import_module(m)))
    assert examples >= 40
