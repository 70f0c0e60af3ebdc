# Two commands on a fresh machine: `make run` and `make test`. Each creates .venv on its own.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TSTAMP := $(VENV)/.installed-test
BSTAMP := $(VENV)/.installed-bench

.PHONY: run test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(TSTAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

$(BSTAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $@

run: $(STAMP)
	$(BIN)/trio-wrapper serve --config conf/trio_wrapper.toml

lint: $(TSTAMP)
	$(BIN)/ruff check trio_wrapper tests bench
	$(BIN)/ruff format --check trio_wrapper tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

test: lint
	$(BIN)/pytest

bench: $(BSTAMP)
	$(BIN)/python bench/capture.py
	$(BIN)/python bench/spawn.py
	$(BIN)/python bench/memory.py
	$(BIN)/python bench/extract.py
	$(BIN)/python bench/sse.py
	$(BIN)/python bench/metrics.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
