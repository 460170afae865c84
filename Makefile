# Fresh machine: `make demo` (install + main job) or `make test` (install + tests).
PYTHON ?= python3
export LEARNFAST_DATA ?= $(abspath ../shared/data)

.PHONY: install demo test test-slow
install:
	$(PYTHON) -m pip install torch==2.13.0
	$(PYTHON) -m pip install -e '.[test]'

demo: install
	learnfast demo

test: install
	$(PYTHON) -m pytest

test-slow: install
	$(PYTHON) -m pytest -m slow
