# Two commands work on a fresh machine: `make build` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: build test lint typecheck snapshots bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,dev]'
	touch $(STAMP)

build: $(STAMP)
	$(BIN)/omnigen build

test: $(STAMP)
	$(BIN)/ruff check omnigen tests
	$(BIN)/mypy
	$(BIN)/pytest -q

snapshots: $(STAMP)
	$(BIN)/omnigen schema -o schema/omnivoip.schema.json
	$(BIN)/pytest -q --snapshot-update tests

# Generator speed and memory against the real `docker compose config -q` (not a test).
bench: $(STAMP)
	$(BIN)/python scripts/bench.py

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache
