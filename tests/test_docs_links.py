"""The project's Markdown links resolve: every relative link names a file of the repository and every
``#anchor`` a heading of its target (GitHub's slugs), so docs moved or renamed never point nowhere."""
import functools
import re

import pytest

from conftest import REPO_ROOT

LINK = re.compile(r"\]\(([^)\s]+)\)")
MARKDOWN = sorted(p for folder in ("", "docs", "zoo", "benchmarks", "resume")
                  for p in (REPO_ROOT / folder).glob("*.md"))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


@functools.cache
def prose(path) -> str:
    """A page's text outside its code fences (links and headings in code are not links or headings)."""
    return re.sub(r"```.*?```", "", path.read_text(), flags=re.S)


def anchors(path) -> set[str]:
    return {slug(m) for m in re.findall(r"^#+ (.+)$", prose(path), re.M)}


def test_slugs_follow_github():
    assert slug("Meta-LSTM") == "meta-lstm"
    assert slug("MAML 20-way 1-shot") == "maml-20-way-1-shot"
    assert slug("Baseline and Baseline++") == "baseline-and-baseline"
    assert slug("`learnfast.optim` (learned optimizers)") == "learnfastoptim-learned-optimizers"


@pytest.mark.parametrize("page", MARKDOWN, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_relative_links_resolve(page):
    broken = []
    for target in LINK.findall(prose(page)):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no file {file}")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{target}: no heading with that anchor in {file.name}")
    assert not broken, f"{page.name}: " + "; ".join(broken)
