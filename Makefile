# `make demo` builds a demo database, migrates it and serves the API; `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint bench lab clean

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

# Benchmarks (not tests): each script in bench/ prints its figures.
bench: $(STAMP)
	for script in bench/*.py; do $(BIN)/python $$script || exit 1; done

# JupyterLab on 127.0.0.1:8888 with the notebooks; their kernel is this venv's Python.
lab: $(STAMP)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test,lab]'
	$(BIN)/jupyter lab --ip 127.0.0.1 --port 8888 --no-browser \
		$(if $(filter 0,$(shell id -u)),--allow-root) notebooks/

clean:
	rm -rf $(VENV) var .pytest_cache
