# The two commands a newcomer needs: `make run` and `make test`. Everything installs itself.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: venv infra setup run demo test test-unit lint schemas bench stop clean

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "needs python3 >= 3.11"; exit 1; }
	@$(PYTHON) -c 'import venv, ensurepip' 2>/dev/null || { apt-get update -qq && apt-get install -y -qq python3-venv; }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	@touch $@

# Local Kafka (Maven Central jars) and PostgreSQL (Debian package), unless given by env.
infra:
	@if [ -z "$$KAFKA_BOOTSTRAP_SERVERS" ]; then deploy/local/kafka.sh start; fi
	@if [ -z "$$DATABASE_URL" ]; then deploy/local/postgres.sh start; fi

setup: venv infra
	$(PY) -m services.admin setup

# Every consumer as its own process, logs prefixed by service; Ctrl-C stops them all.
run: setup
	deploy/local/run.sh

# Beside a running `make run`: send a sample stream and print what came out.
demo: venv
	$(PY) -m tools.demo

# The whole suite against real Kafka and PostgreSQL (the fixtures start them if needed).
test: venv
	$(PY) -m pytest -q

test-unit: venv
	$(PY) -m pytest -q tests/unit

# ruff, mypy --strict, and the import rules between layers ([tool.importlinter] in pyproject.toml).
lint: venv
	$(VENV)/bin/ruff check services tests tools
	$(VENV)/bin/ruff format --check services tests tools
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

schemas: venv
	$(PY) -m tools.schemas

bench: setup
	$(PY) -m tools.bench

stop:
	-deploy/local/kafka.sh stop

clean: stop
	rm -rf $(VENV) .local
