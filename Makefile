# Fresh machine: `make demo` (install + main job) or `make test` (install + tests).
# Both install into a project virtual environment, .venv (torch 2.13.0 CPU first, then learnfast
# in editable mode); `. .venv/bin/activate` puts `learnfast` on your PATH afterwards.
# Data: --data-root, else $LEARNFAST_DATA, else the first of ./data and ../shared/data that holds omniglot/.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install demo test test-slow
install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -e '.[test]'
	touch $@

demo: install
	$(VENV)/bin/learnfast demo

test: install
	$(PY) -m pytest

test-slow: install
	$(PY) -m pytest -m slow
