# Two commands on a fresh machine: `make run` and `make test`. Each creates .venv on its own
# and installs the exact versions of requirements/*.lock (hashes checked); pyproject.toml
# keeps the ranges, `make lock` turns them into new locks.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip --disable-pip-version-check
STAMP  := $(VENV)/.installed-run
TSTAMP := $(VENV)/.installed-test
BSTAMP := $(VENV)/.installed-bench
# Extra flags for `make run`, e.g. ARGS="--port 0"; the address is conf/trio_wrapper.toml's.
ARGS   ?=

.PHONY: run test lint bench fuzz lock openapi clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The locked packages first (setuptools among them), then the project itself, editable,
# built with that setuptools: nothing is resolved at install time.
define install_locked
	$(PIP) install --quiet --require-hashes -r requirements/$(1).lock
	$(PIP) install --quiet --no-deps --no-build-isolation -e .
	touch $@
endef

$(STAMP): pyproject.toml requirements/run.lock | $(BIN)/python
	$(call install_locked,run)

$(TSTAMP): pyproject.toml requirements/test.lock | $(BIN)/python
	$(call install_locked,test)

$(BSTAMP): pyproject.toml requirements/bench.lock | $(BIN)/python
	$(call install_locked,bench)

run: $(STAMP)
	$(BIN)/trio-wrapper serve --config conf/trio_wrapper.toml $(ARGS)

lint: $(TSTAMP)
	$(BIN)/ruff check trio_wrapper tests bench
	$(BIN)/ruff format --check trio_wrapper tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

test: lint
	$(BIN)/pytest

bench: $(BSTAMP)
	$(BIN)/python bench/capture.py
	$(BIN)/python bench/linewrite.py
	$(BIN)/python bench/spawn.py
	$(BIN)/python bench/memory.py
	$(BIN)/python bench/churn.py
	$(BIN)/python bench/extract.py
	$(BIN)/python bench/sse.py
	$(BIN)/python bench/metrics.py
	$(BIN)/python bench/history.py

# Not part of `make test` (minutes, not seconds): (a) schemathesis against a running daemon's
# /openapi.json, (b) property tests with many examples (tests/fuzz, skipped without FUZZ=1).
# The `fuzz` extra is installed over the test lock from pyproject's ranges.
FUZZ_EXAMPLES ?= 50
fuzz: $(TSTAMP)
	$(PIP) install --quiet --no-build-isolation -e '.[fuzz]'
	$(BIN)/python -m tests.fuzz.openapi --max-examples $(FUZZ_EXAMPLES)
	FUZZ=1 $(BIN)/pytest tests/fuzz -p no:cacheprovider -q

# docs/openapi.json from the app (a test fails when it differs from /openapi.json).
openapi: $(TSTAMP)
	$(BIN)/python -m tests.api.test_docs

# New locks from pyproject's ranges (needs uv, installed into the venv for this).
LOCK := $(BIN)/uv pip compile --quiet --generate-hashes --python-version 3.11 \
	--custom-compile-command "make lock" pyproject.toml requirements/build.in
lock: | $(BIN)/python
	$(PIP) install --quiet uv
	$(LOCK) -o requirements/run.lock
	$(LOCK) --extra test -o requirements/test.lock
	$(LOCK) --extra test --extra bench -o requirements/bench.lock

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
