# parley developer commands. `make test` is what CI runs (.ci/run).
#
# Python: the newest of python3.13, python3.12, python3.11, python3 on PATH that runs and
# is at least 3.11 (pyproject.toml); `make PYTHON=/path/to/python ...` overrides it.
PYTHON_NAMES := python3.13 python3.12 python3.11 python3
# Prints "VERSION" of a Python >= 3.11 and fails for anything else (missing, a pyenv shim
# with no version selected, too old).
PY_VERSION = $(shell $(1) -c 'import sys; v = sys.version_info; print("%d.%d.%d" % v[:3]) if v >= (3, 11) else sys.exit(1)' 2>/dev/null)
ifeq ($(origin PYTHON),undefined)
PYTHON := $(firstword $(foreach p,$(PYTHON_NAMES),$(if $(call PY_VERSION,$(p)),$(p))))
endif
VENV ?= .venv
BIN := $(VENV)/bin
# A second interpreter for `make test-compat`, in its own small venv.
COMPAT_VENV ?= var/compat-venv
COMPAT_TESTS := tests/conversation/test_engine.py tests/templates

.PHONY: venv dev-venv check-python test test-compat lint run migrate flows clean bench bench-quick bench-memory bench-deps chaos

check-python:
	@if [ -z "$(PYTHON)" ]; then echo "parley needs Python >= 3.11: none of $(PYTHON_NAMES) on PATH is (or set PYTHON=...)" >&2; exit 1; fi
	@v="$(call PY_VERSION,$(PYTHON))"; if [ -z "$$v" ]; then echo "PYTHON=$(PYTHON) is not a Python >= 3.11" >&2; exit 1; fi

# The venv itself; which requirements it holds is kept by the stamp files below, so a
# venv that `make run` made (runtime only) is completed by `make test`, not rebuilt.
$(BIN)/python: | check-python
	@echo "creating $(VENV) with $(PYTHON) (Python $(call PY_VERSION,$(PYTHON)))"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.runtime-installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev-installed: requirements-dev.txt $(VENV)/.runtime-installed
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

# What running parley needs (requirements.txt) ...
venv: $(VENV)/.runtime-installed
# ... and what testing and linting it needs on top (requirements-dev.txt).
dev-venv: $(VENV)/.dev-installed

test: dev-venv
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

# The engine and loader tests (no services) on a second Python: the newest one that runs
# other than $(PYTHON) (`COMPAT_PYTHON=...` overrides). pyenv's shims answer only for the
# version pyenv has selected, so the interpreters pyenv installed are looked at directly.
# Without a second Python this says so; with CI=true it fails, as a check must not pass
# by doing nothing.
test-compat: check-python
	@main="$$($(PYTHON) -c 'import sys; print(sys.executable)')"; py="$(COMPAT_PYTHON)"; \
	if [ -z "$$py" ]; then \
	  for c in $(PYTHON_NAMES) $$(command -v pyenv >/dev/null && ls -d "$$(pyenv root)"/versions/3.*/bin/python3.* 2>/dev/null | grep -E "/python3\.[0-9]+$$"); do \
	    exe="$$($$c -c 'import sys; print(sys.executable) if sys.version_info >= (3, 11) else sys.exit(1)' 2>/dev/null)" || continue; \
	    [ "$$(realpath "$$exe")" = "$$(realpath "$$main")" ] && continue; \
	    [ "$$($$c -c 'import sys; print(sys.version_info[:2])')" = "$$($(PYTHON) -c 'import sys; print(sys.version_info[:2])')" ] && continue; \
	    if [ -z "$$py" ] || [ "$$($$c -c 'import sys; print(sys.hexversion)')" -gt "$$($$py -c 'import sys; print(sys.hexversion)')" ]; then py="$$c"; fi; \
	  done; \
	fi; \
	if [ -z "$$py" ]; then \
	  echo "test-compat: no Python >= 3.11 other than $(PYTHON) found; nothing tested"; \
	  if [ "$$CI" = "true" ]; then echo "test-compat: CI=true, so this is a failure" >&2; exit 1; fi; exit 0; \
	fi; \
	echo "test-compat: $(COMPAT_TESTS) on $$py (Python $$($$py -c 'import platform; print(platform.python_version())'); main: $(PYTHON))"; \
	if [ ! -x $(COMPAT_VENV)/bin/python ] || [ "$$($(COMPAT_VENV)/bin/python -c 'import sys; print(sys.version)')" != "$$($$py -c 'import sys; print(sys.version)')" ]; then \
	  rm -rf $(COMPAT_VENV) && $$py -m venv $(COMPAT_VENV) || exit 1; \
	fi; \
	grep -E '^(pytest|pytest-timeout)==' requirements-dev.txt > $(COMPAT_VENV)/test-pins.txt && \
	$(COMPAT_VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt -r $(COMPAT_VENV)/test-pins.txt && \
	$(COMPAT_VENV)/bin/python -m pytest -q -p no:cacheprovider $(COMPAT_TESTS)

lint: dev-venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

migrate: venv
	$(BIN)/alembic upgrade head

flows: migrate
	$(BIN)/flask --app webhook templates load templates/

run: flows
	VENV=$(VENV) scripts/dev.sh

# Performance suite (bench/README.md): figures, not pass/fail. wrk and pgbench come from Debian.
bench-deps: dev-venv
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
chaos: dev-venv
	PARLEY_CHAOS_DOC=docs/RELIABILITY.md $(BIN)/python -m pytest tests/reliability -m "chaos or not chaos" -p no:randomly --timeout 900

clean:
	rm -rf var .pytest_cache .ruff_cache
