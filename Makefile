# radstore: `make demo` runs the whole pipeline on a synthetic cohort, `make test` runs the tests.
# Both create/use the virtualenv .venv in the project root.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install demo test test-slow test-all gpu-check lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "radstore needs Python 3.11"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	$(BIN)/python -m pip install -q -e '.[dev,pyradiomics]'
	touch $(STAMP)

demo: install
	$(BIN)/radstore demo

test: install
	$(BIN)/python -m pytest -m "not slow and not gpu" $(PYTEST_ARGS)

test-slow: install
	$(BIN)/python -m pytest -m "slow and not gpu" $(PYTEST_ARGS)

test-all: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

gpu-check: install
	PY=$(BIN)/python bash benchmarks/gpu_check.sh

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy

clean:
	rm -rf radstore-data .pytest_cache .ruff_cache .mypy_cache
