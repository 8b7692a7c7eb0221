# Two commands matter: `make setup` once on a fresh machine, then `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python

.PHONY: setup test lint typecheck run bench bench-halo sandbox clean

setup:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	npm ci --no-audit --no-fund --loglevel=error

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck:
	$(BIN)/mypy

test: lint typecheck
	$(PY) -m pytest

run:
	$(PY) -m sandbox.devhost --port 7071

bench:
	$(PY) bench/halo_read.py
	$(PY) bench/sync.py
	$(PY) bench/targets.py

bench-halo:
	$(PY) bench/halo_read.py

sandbox:
	$(PY) -m sandbox.halo --port 8089

clean:
	rm -rf $(VENV) node_modules .pytest_cache .mypy_cache .ruff_cache
