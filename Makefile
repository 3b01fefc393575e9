# Kefu: two commands do all the set-up.
#   make run    virtualenv, llama-server build (cached), model fetch (cached), demo data, server
#   make test   the same set-up with the small CI model, then lint, types, import layers, tests
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
MODEL ?= qwen2.5-coder-1.5b
E2E_MODEL ?= qwen2.5-coder-0.5b

.PHONY: run test setup llama-server browser services cluster lint typecheck contracts pytest bench-e2e leak-test soak clean

$(VENV)/.installed: pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev]'
	@touch $@

setup: $(VENV)/.installed

llama-server: setup
	@PYTHON=$(BIN)/python bash scripts/build-llama-server.sh

# The browser tests drive Debian's Chromium and the README's JavaScript example runs on Debian's
# Node; as root we install what is missing, otherwise we say how.
browser:
	@missing=""; command -v chromium >/dev/null || missing="chromium"; \
	  command -v node >/dev/null || missing="$$missing nodejs"; \
	  if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	    else echo "the browser and README tests need: sudo apt-get install $$missing" >&2; exit 1; fi; fi

# PostgreSQL, Redis and nginx from Debian: the tests run the suite on PostgreSQL too and start a
# small cluster (replicas behind nginx, sharing PostgreSQL and Redis) on loopback.
services: setup
	@missing=$$($(BIN)/python -c 'from evals.localservers import missing; print(" ".join(missing()))' 2>/dev/null || echo "postgresql redis-server nginx-light"); \
	  if [ -n "$$missing" ]; then \
	    if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	    else echo "the tests need: sudo apt-get install $$missing" >&2; exit 1; fi; fi

run: setup llama-server
	@$(BIN)/kefu models fetch --model $(MODEL) >/dev/null
	@$(BIN)/kefu seed
	@$(BIN)/kefu vault init
	@ls $${KEFU_INSIGHTS_DIR:-$${KEFU_DATA_DIR:-var}/insights}/churn_30d.pkl >/dev/null 2>&1 || $(BIN)/kefu insights train >/dev/null
	@exec $(BIN)/kefu serve --model $(MODEL)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

contracts: setup
	$(BIN)/lint-imports

pytest: setup llama-server browser services
	@$(BIN)/kefu models fetch --model $(E2E_MODEL) >/dev/null
	KEFU_E2E_MODEL=$(E2E_MODEL) $(BIN)/pytest --cov --cov-report=term:skip-covered

test: lint typecheck contracts pytest

bench-e2e: setup llama-server
	@$(BIN)/kefu models fetch --model $(MODEL) >/dev/null
	$(BIN)/python -m evals.e2e_latency --model $(MODEL)

leak-test: setup
	$(BIN)/python -m evals.pii_leak --conversations $(or $(CONVERSATIONS),600) --out evals/results/pii_leak.json

# Reliability at full size: kill -9 under 50 conversations, the LLM killed, storage after 10k
# conversations (SCENARIO=kill9|llm-down|retention runs one).
soak: setup
	$(BIN)/python -m evals.reliability $(or $(SCENARIO),all) --out evals/results/reliability.json

# The cluster on loopback: PostgreSQL, Redis, 3 API replicas behind nginx, the fake LLM: kill -9 one
# replica under 200 WebSocket conversations, a handoff across replicas, turns/s with 1, 2 and 3 replicas.
cluster: setup services
	$(BIN)/python -m evals.cluster all --out evals/results/cluster.json

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .coverage
