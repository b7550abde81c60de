# Two commands from a fresh clone: `make run` and `make test`.
# Everything is installed from the hash-pinned lock files into .venv.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
# pytest-xdist workers: one per core, at most four (each has its own databases).
WORKERS ?= auto
XDIST   := -n $(WORKERS) --maxprocesses=4 --dist loadgroup

.DEFAULT_GOAL := help
.PHONY: help run test test-fast lint format typecheck check docs bench bench-peer wrk lock clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24.2"

$(VENV)/.runtime: requirements.lock pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

$(VENV)/.dev: requirements-dev.lock pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --require-hashes -r requirements-dev.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(VENV)/.runtime $@

# The interoperability tests drive real peers written in JavaScript (a certified relying
# party, a certified provider, a browser application): each folder of tests/interop with a
# package-lock.json is installed by `npm ci`, with the Node.js that the dev lock pins.
NODE_LOCKS := $(wildcard tests/interop/*/package-lock.json)

$(VENV)/.node: $(NODE_LOCKS) | $(VENV)/.dev
	@for lock in $(NODE_LOCKS); do \
	  echo "npm ci in $$(dirname $$lock)"; \
	  (cd "$$(dirname $$lock)" && PATH="$(abspath $(BIN)):$$PATH" npm ci --no-audit --no-fund --ignore-scripts) || exit 1; \
	done
	touch $@

run: $(VENV)/.runtime  ## serve on 127.0.0.1:8000 with SQLite (migrated at start-up)
	$(BIN)/authsvc serve --host $(HOST) --port $(PORT)

test: $(VENV)/.dev $(VENV)/.node  ## lint, type-check, check the layering and run the whole suite with coverage (floor: 90%)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest $(XDIST) --cov=app --cov-report=term-missing:skip-covered --cov-fail-under=90 $(PYTEST_ARGS)

test-fast: $(VENV)/.dev $(VENV)/.node  ## the quick loop: SQLite only, no processes, browsers or fuzzing
	env -u TEST_DATABASE_URL -u TEST_REDIS_URL $(BIN)/pytest $(XDIST) -m "not process and not browser and not slow" $(PYTEST_ARGS)

lint: $(VENV)/.dev  ## ruff check + format check + the layering (.importlinter)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: $(VENV)/.dev  ## apply ruff's formatting and safe fixes
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: $(VENV)/.dev  ## mypy (strict) on app/
	$(BIN)/mypy

docs: $(VENV)/.runtime  ## write the OpenAPI document to docs/openapi.json (a test fails when stale)
	$(BIN)/authsvc openapi docs/openapi.json

bench: $(VENV)/.dev wrk  ## load-test with wrk against the hashing limit (BENCH_ARGS="--duration 5")
	$(BIN)/python bench/run.py $(if $(PEER),--peer) $(BENCH_ARGS)

bench-peer: $(VENV)/.dev wrk  ## the fastapi-users peer and ours in one run, with the ratios between them
	$(BIN)/python bench/run.py --peer $(BENCH_ARGS)

wrk:
	@command -v wrk >/dev/null || { \
	  echo "[bench] wrk is missing: installing Debian's package (apt-get install wrk)"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get install -y wrk || { apt-get update && apt-get install -y wrk; }; \
	  else sudo apt-get install -y wrk; fi; }

lock:  ## re-pin requirements*.lock from pyproject.toml (needs uv)
	uv pip compile pyproject.toml --extra build --python-version 3.11 --generate-hashes -o requirements.lock
	uv pip compile pyproject.toml --extra build --extra dev --python-version 3.11 --generate-hashes -o requirements-dev.lock

clean:  ## remove the virtualenv and caches (keeps auth.db)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage htmlcov
