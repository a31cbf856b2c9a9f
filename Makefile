# parley developer commands. `make test` is what CI runs (.ci/run).
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: venv test lint run migrate flows clean bench bench-quick bench-memory bench-deps chaos

$(BIN)/activate: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(BIN)/activate

venv: $(BIN)/activate

test: venv
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

migrate: venv
	$(BIN)/alembic upgrade head

flows: migrate
	$(BIN)/flask --app webhook templates load templates/

run: flows
	VENV=$(VENV) scripts/dev.sh

# Performance suite (bench/README.md): figures, not pass/fail. wrk and pgbench come from Debian.
bench-deps: venv
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	@command -v pgbench >/dev/null || (apt-get update -qq && apt-get install -y -qq postgresql-contrib)
	@command -v redis-server >/dev/null || (apt-get update -qq && apt-get install -y -qq redis-server)
	$(BIN)/pip install --quiet -r bench/requirements.txt

bench: bench-deps
	$(BIN)/python -m bench.run

bench-quick: bench-deps
	$(BIN)/python -m bench.run --quick

bench-memory: bench-deps
	$(BIN)/python -m bench.run --only memory --memory-messages 100000

# The whole fault suite (tests/reliability): prints the table of lost / duplicated /
# out-of-order / stuck replies per fault and writes it into docs/RELIABILITY.md.
# Restarts the machine's Postgres once or twice (and brings it back up).
chaos: venv
	PARLEY_CHAOS_DOC=docs/RELIABILITY.md $(BIN)/python -m pytest tests/reliability -m "chaos or not chaos" -p no:randomly --timeout 900

clean:
	rm -rf var .pytest_cache .ruff_cache
