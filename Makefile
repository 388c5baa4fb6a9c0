# The two commands a newcomer needs: `make demo` and `make test`. Everything else is for
# developers. Each target creates the virtual environment first when it is missing.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
STAMP := $(VENV)/.installed
#: The lock tool. uv.lock pins every package with its hashes; `make lock` refreshes it.
UV_VERSION := 0.13.9

.PHONY: demo test lint bench chaos fuzz lock install-check clean

# The environment is exactly uv.lock (hashes checked), with the test and embedded-Redis
# extras, and cartsync itself installed editable.
$(STAMP): pyproject.toml uv.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "cartsync needs Python 3.11 or newer: set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet uv==$(UV_VERSION)
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --quiet --frozen --inexact --extra test --python $(PY)
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/cartsync demo

# Runs pytest against CARTSYNC_REDIS_URL when a Redis answers there, else an embedded one.
test: $(STAMP)
	$(PY) -m cartsync.worker.redisserver -- $(PY) -m pytest $(PYTEST_ARGS)

# mypy cannot follow the folder-to-package mapping of pyproject.toml, so it reads the
# folders through a link named like the installed package (.typecheck/cartsync).
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	@mkdir -p .typecheck && ln -sfn .. .typecheck/cartsync
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) -m cartsync.worker.redisserver -- $(PY) -m bench

chaos: $(STAMP)
	$(PY) -m cartsync.worker.redisserver -- $(PY) -m bench.chaos

fuzz: $(STAMP)
	$(PY) -m cartsync.worker.redisserver -- $(PY) -m bench.fuzz

# Resolves every dependency anew (newest releases within pyproject's ranges) into uv.lock.
lock: $(STAMP)
	$(UV) lock --upgrade

# The production path: the wheel, installed from the lock without extras, runs (.ci/install-check).
install-check: $(STAMP)
	$(PY) -m cartsync.worker.redisserver -- bash .ci/install-check

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
