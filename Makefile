# Quick start: `make demo` and `make test`. Everything installs into .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install promtool demo demo-data-sim test check unit integration bench schemas clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# promtool (Prometheus' config and rule checker) for tests/unit/test_deploy.py. Taken out of
# Debian's `prometheus` package into .venv/bin without installing the package: no service, no
# system user, no dependencies (a static binary; about 4 s with a warm apt cache). A promtool
# already on PATH is used as it is. Needs apt-get; `apt-get update` (root) only when the package
# lists are empty.
promtool: $(STAMP)
	@if command -v promtool >/dev/null || test -x $(BIN)/promtool; then exit 0; fi; \
	set -e; dir=$$(mktemp -d); trap 'rm -rf "$$dir"' EXIT; \
	(cd "$$dir" && apt-get download -q -o APT::Sandbox::User=root prometheus 2>/dev/null) \
	  || (apt-get update -qq && cd "$$dir" && apt-get download -q -o APT::Sandbox::User=root prometheus); \
	dpkg-deb --fsys-tarfile "$$dir"/prometheus_*.deb | tar -xO ./usr/bin/promtool > $(BIN)/promtool.tmp; \
	chmod +x $(BIN)/promtool.tmp; mv $(BIN)/promtool.tmp $(BIN)/promtool; \
	$(BIN)/promtool --version | head -n 1

demo: install
	$(BIN)/microseg demo

# The simulated multi-stream demo file and its answer key (synthetic: `microseg simulate`, see
# stream/data/demo/SOURCES.md). Byte-for-byte reproducible; tests/unit/data/test_demo_data.py re-runs
# it with the parameters recorded in the truth file and compares.
DEMO_SIM_ARGS := --customers 400 --days 35 --seed 7
demo-data-sim: install
	$(BIN)/microseg simulate $(DEMO_SIM_ARGS) \
	  --out stream/data/demo/simulated.jsonl.gz --truth stream/data/demo/simulated.truth.json

# Static checks first (cheap, and they guard the core/adapter layering), then every test.
check: install
	$(BIN)/ruff check stream tests
	$(BIN)/ruff format --check stream tests
	$(BIN)/lint-imports
	$(BIN)/mypy

# Unit tests and doctests share nothing and run on two processes. The integration tests run
# after them, also on two processes, each process with its own broker. Both phases hand out a
# test file at a time (`--dist loadfile`: a module's fixtures, such as the bench run or the
# offline replays, are set up once), slowest files first (`--no-loadscope-reorder` keeps the order
# tests/conftest.py gives), so that the two processes finish together: with xdist's own order one
# of them sat idle for the last 146 s of 389 (integration) and 142 s of 424 (unit); in that order,
# 3 s and 0.3 s. The integration tests wait on workers more than they compute (1.1 of the 2 cores
# busy), but a third process gained nothing (the bench run slowed).
test: check promtool
	$(BIN)/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder tests/unit stream
	$(BIN)/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder tests/integration

unit: install promtool
	$(BIN)/python -m pytest tests/unit stream/core

integration: install
	$(BIN)/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder tests/integration

bench: install
	$(BIN)/microseg bench

schemas: install
	$(BIN)/microseg schemas export

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info
