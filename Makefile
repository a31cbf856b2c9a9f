# parley developer commands. `make test` is what CI runs (.ci/run).
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: venv test lint run migrate flows clean

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

clean:
	rm -rf var .pytest_cache .ruff_cache
