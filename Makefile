# gembus developer loop. `make` alone prints this help.
.DEFAULT_GOAL := help
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export GEMBUS_BIND ?= 127.0.0.1:8000

.PHONY: help venv run serve migrate demo test test-unit test-integration test-e2e check lint typecheck bench clean

help: ## show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

$(STAMP): setup.cfg pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "gembus needs $(PYTHON) (spyne 2.14 does not import on 3.12+)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP) ## create the virtualenv and install gembus with its dev tools

migrate: $(STAMP) ## apply the database migrations (GEMBUS_DATABASE_URL, default embedded SQLite)
	$(BIN)/gembus db upgrade

demo: migrate ## load the demo partners
	$(BIN)/gembus demo load

run: demo ## the main job: venv, migrate SQLite, demo data, gunicorn on 127.0.0.1:8000 + a worker
	@$(BIN)/gembus worker & worker=$$!; \
	trap 'kill $$worker 2>/dev/null; wait $$worker 2>/dev/null' EXIT INT TERM; \
	$(BIN)/gembus serve

test: $(STAMP) ## run the whole suite (PostgreSQL tier when the local server answers)
	$(BIN)/python -m pytest

test-unit: $(STAMP) ## unit tier only (no sockets)
	$(BIN)/python -m pytest tests/unit

test-integration: $(STAMP) ## integration tier (real PostgreSQL and SQLite)
	$(BIN)/python -m pytest tests/integration

test-e2e: $(STAMP) ## end-to-end tier (real gunicorn + zeep on 127.0.0.1)
	$(BIN)/python -m pytest tests/e2e

check: lint typecheck ## ruff + mypy --strict on the source packages

lint: $(STAMP)
	$(BIN)/ruff check gembus domain bus endpoints adapters persistence ui tests bench

typecheck: $(STAMP)
	$(BIN)/mypy gembus domain bus endpoints adapters persistence ui

bench: $(STAMP) ## benchmarks; figures are ratios against limits measured in the same run
	$(BIN)/python -m bench

clean: ## remove the virtualenv, caches and the embedded database
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
