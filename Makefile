# Kasparro: `make demo` runs the platform on the bundled recording; `make test` runs the tests.
# Both bootstrap .venv themselves: with uv when it is on PATH, else python3 -m venv + pip (which
# installs uv into .tools/ and then installs exactly what uv.lock pins).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
STAMP := $(VENV)/.synced
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
# Every ingest, test subprocess and temporary Prefect server imports ~2,000 modules: without
# bytecode files each one compiles them again (5-6 s of CPU a process, measured). The install
# writes them (10 s once), so a shell with PYTHONDONTWRITEBYTECODE set runs
# `.venv/bin/kasparro` without compiling too: the demo ingest with the stack up took 6-7 s
# instead of 3.
unexport PYTHONDONTWRITEBYTECODE
export UV_PROJECT_ENVIRONMENT := $(VENV)

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv

$(STAMP): pyproject.toml uv.lock | $(if $(findstring .tools,$(UV)),.tools/bin/uv)
	$(UV) sync --locked --compile-bytecode --python $(PYTHON)
	$(BIN)/python -m compileall -q kasparro flows store web
	@touch $(STAMP)

.PHONY: install
install: $(STAMP) ## Create .venv with every locked dependency

.PHONY: demo
demo: $(STAMP) ## Ingest the bundled demo recording offline, then serve the API on 127.0.0.1:8000
	$(BIN)/kasparro ingest --replay data/demo
	$(BIN)/kasparro serve

.PHONY: ingest
ingest: $(STAMP) ## Run the ingest flow once against the live sources
	$(BIN)/kasparro ingest

.PHONY: serve
serve: $(STAMP) ## Serve the API over the last published snapshot
	$(BIN)/kasparro serve

.PHONY: up
up: $(STAMP) ## Start the local stack in the background: Prefect server + UI on 127.0.0.1:4200, work pool, deployments, worker, API on :8000
	$(BIN)/kasparro up --detach

.PHONY: down
down: $(STAMP) ## Stop the local stack
	$(BIN)/kasparro down

.PHONY: test
test: $(STAMP) ## Run the test suite (offline): unit and integration on two workers, then e2e
	$(BIN)/pytest -n 2 --dist loadfile --ignore=tests/e2e
	$(BIN)/pytest tests/e2e

.PHONY: lint
lint: $(STAMP) ## ruff (lint and format check) and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

.PHONY: fmt
fmt: $(STAMP) ## Format and auto-fix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

.PHONY: bench
bench: $(STAMP) ## Quick benchmarks: 100k and 1M quotes (~5 min once inputs are cached); appended to docs/benchmarks.md
	$(UV) sync --locked --group bench --python $(PYTHON)
	$(BIN)/python -m bench.run

.PHONY: bench-full
bench-full: $(STAMP) ## Full benchmarks: 1M and 10M quotes (generating 10M takes ~11 min, once)
	$(UV) sync --locked --group bench --python $(PYTHON)
	$(BIN)/python -m bench.run --full

.PHONY: resolution-eval
resolution-eval: $(STAMP) ## Entity resolution on the real captures (../shared) and the time-shifted demo (~1 min)
	$(BIN)/python -m bench.resolution_eval

.PHONY: clean
clean: ## Remove the environments and local runtime data
	rm -rf $(VENV) .tools data/local .pytest_cache .mypy_cache .ruff_cache .bench-cache
