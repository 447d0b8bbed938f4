# Each target creates .venv and installs what it needs: `make demo` and `make test` work on a fresh
# Linux machine that has only Python >= 3.10.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install -q --disable-pip-version-check

.PHONY: demo test test-gpu bench parity lint coverage clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.test: pyproject.toml | $(BIN)/python
	$(PIP) -e '.[test]'
	touch $@

$(VENV)/.demo: pyproject.toml | $(BIN)/python
	$(PIP) -e '.[mpi,examples]'
	touch $@

$(VENV)/.bench: pyproject.toml | $(BIN)/python
	$(PIP) -e '.[test,bench]'
	touch $@

demo: $(VENV)/.demo
	$(BIN)/python examples/train_digits.py

test: $(VENV)/.test
	$(BIN)/python -m pytest -q -p no:cacheprovider

test-gpu: $(VENV)/.test
	$(PIP) -e '.[cuda12x]'
	$(BIN)/python -m pytest -q -p no:cacheprovider -m gpu

bench: $(VENV)/.bench
	$(BIN)/python benchmarks/engine.py
	$(BIN)/python benchmarks/train_step.py

parity: $(VENV)/.bench
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/parity

lint: $(VENV)/.test
	$(PIP) ruff
	$(BIN)/python -m ruff check disttorch launcher kernels tests benchmarks examples

coverage: $(VENV)/.test
	$(BIN)/python docs/coverage.py

clean:
	rm -rf $(VENV) build dist *.egg-info
