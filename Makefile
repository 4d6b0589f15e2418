# The two promises of the README: `make run` and `make test` work on a fresh clone.
#
# Packages come from uv.lock (the versions tested together) through uv, which installs them in
# seconds. uv itself is bootstrapped with the machine's pip into .venv/uv (linked as .venv/bin/uv),
# so a machine needs only Python 3.11+, pip, git and make; the venv is made without pip (uv
# installs into it), which saves seconds. Without uv: see "Installing without uv" in the README.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
UV     := $(BIN)/uv
UV_VERSION := 0.13.9
UV_HOME    := $(VENV)/uv
STAMP_RUN  := $(VENV)/.installed-run
STAMP_DEV  := $(VENV)/.installed-dev
# --inexact: `make run` after `make test` keeps the dev extras (and the stamps stay true).
UV_SYNC := $(UV) sync --frozen --inexact --python $(BIN)/python

export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: install run test lint typecheck pytest bench lock clean

$(BIN)/python:
	$(PYTHON) -m venv --without-pip $(VENV)

$(UV): | $(BIN)/python
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --target $(UV_HOME) 'uv==$(UV_VERSION)'
	ln -sf ../uv/bin/uv $@

$(STAMP_RUN): pyproject.toml uv.lock | $(UV)
	$(UV_SYNC) --extra embedded
	touch $@

# The bench extra too: pyright checks benchmarks/, which imports it.
$(STAMP_DEV): pyproject.toml uv.lock | $(UV)
	$(UV_SYNC) --extra embedded --extra dev --extra bench
	touch $@ $(STAMP_RUN)

install: $(STAMP_RUN)

run: $(STAMP_RUN)
	$(BIN)/chorus serve

lint: $(STAMP_DEV)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP_DEV)
	$(BIN)/pyright

pytest: $(STAMP_DEV)
	$(BIN)/python -m pytest -q

test: lint typecheck pytest

bench: $(STAMP_DEV)
	$(BIN)/python -m benchmarks.run

# After changing the dependencies in pyproject.toml: resolve again and commit uv.lock.
lock: | $(UV)
	$(UV) lock

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
