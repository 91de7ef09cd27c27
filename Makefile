# The set-up commands a newcomer needs: `make run`, `make test`, and `make check` before a commit.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
UV_VERSION := 0.13.9
# uv trusts the operating system's certificate store (as pip and curl do), so installs work
# behind a TLS-intercepting proxy whose CA is only installed system-wide.
export UV_NATIVE_TLS := 1

.PHONY: run test test-down test-tools test-unit check install infra-up down lint format lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The development environment: the services' dependencies, the tools' and the dev group's.
$(VENV)/.installed: $(BIN)/python requirements-dev.lock pyproject.toml
	$(BIN)/pip install -q "uv==$(UV_VERSION)"
	$(BIN)/uv pip sync -q -p $(BIN)/python requirements-dev.lock
	$(BIN)/uv pip install -q -p $(BIN)/python --no-deps -e .
	touch $@

install: $(VENV)/.installed

## run: start Kafka, PostgreSQL, Redis and every service, then send a demo order through it
## (BROKERS=3: a replicated three-node Kafka cluster; docs/operations.md#a-kafka-cluster)
run: install
	$(BIN)/foodflow up $(if $(BROKERS),--brokers $(BROKERS))

# The suite's own servers: the test profile (tests/profile.py: ports 19092, 15432, 16379,
# 18000-18007, state in .state/test), never a `make run` system's.
TEST_PROFILE := $(BIN)/python -m tests.profile

## test: install (Chromium, docker-compose too), start the test profile's infrastructure, run the whole suite
test: install test-tools
	$(TEST_PROFILE) $(BIN)/foodflow infra up
	$(TEST_PROFILE) $(BIN)/pytest

# What the suite drives besides the servers, installed before it starts (apt's output shown):
# the browser of the dashboard's tests, and docker-compose, whose `config` checks the compose files.
test-tools: install
	$(BIN)/foodflow infra browser
	$(BIN)/foodflow infra compose

## test-down: stop the test profile's services and infrastructure (a `make run` system stays up)
test-down: install
	$(TEST_PROFILE) $(BIN)/foodflow down

## test-unit: the unit tier alone (pure logic and fakes, no server): the fast loop while coding
test-unit: install
	$(BIN)/pytest -q tests/unit

## check: everything that needs no server: lint, format, strict types, import layers, unit tier
check: lint
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/pytest -q tests/unit

infra-up: install
	$(BIN)/foodflow infra up

## down: stop the services and the infrastructure (data kept)
down: install
	$(BIN)/foodflow down

lint: install
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

format: install
	$(BIN)/ruff format src tests
	$(BIN)/ruff check --fix src tests

## lock: re-resolve both locks after changing pyproject.toml (pins already there are kept)
# requirements.lock: the services' runtime alone (the image); requirements-dev.lock: everything.
lock: install
	$(BIN)/uv pip compile -q pyproject.toml -o requirements.lock
	$(BIN)/uv pip compile -q pyproject.toml --extra tools --group dev -o requirements-dev.lock

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
