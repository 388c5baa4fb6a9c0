# The two commands a newcomer needs: `make demo` and `make test`. Everything else is for
# developers. Each target creates the virtual environment first when it is missing.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench chaos clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "cartsync needs Python 3.11 or newer: set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/cartsync demo

# Runs pytest against CARTSYNC_REDIS_URL when a Redis answers there, else an embedded one.
test: $(STAMP)
	$(PY) -m worker.redisserver -- $(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy .

bench: $(STAMP)
	$(PY) -m worker.redisserver -- $(PY) -m bench

chaos: $(STAMP)
	$(PY) -m worker.redisserver -- $(PY) -m bench.chaos

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache .hypothesis
