# `make demo` builds a demo database, migrates it and serves the API; `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test soak lint bench lab clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	WALLET_ENV=demo $(BIN)/wallet demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: lint
	$(BIN)/pytest

# The slow fault and load runs (tests marked soak), printing their figures; CI runs them too.
# The load runs drive the API with wrk (Debian's package), installed here when missing.
soak: $(STAMP)
	command -v wrk >/dev/null || apt-get install -y wrk || (apt-get update && apt-get install -y wrk)
	$(BIN)/pytest -m soak -s

# Benchmarks (not tests): each bench/bench_*.py prints its figures and adds them to
# bench/README.md. The load tests need wrk (Debian's package), installed here when missing.
bench: $(STAMP)
	command -v wrk >/dev/null || apt-get install -y wrk || (apt-get update && apt-get install -y wrk)
	for script in bench/bench_*.py; do \
		$(BIN)/python -m bench.$$(basename $$script .py) || exit 1; \
	done

# JupyterLab on 127.0.0.1:8888 with the notebooks; their kernel is this venv's Python.
lab: $(STAMP)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test,lab]'
	$(BIN)/jupyter lab --ip 127.0.0.1 --port 8888 --no-browser \
		$(if $(filter 0,$(shell id -u)),--allow-root) notebooks/

clean:
	rm -rf $(VENV) var .pytest_cache
