# Two entry points for a fresh machine: `make demo` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup server demo test lint bench clean

setup: $(STAMP) server

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

server: $(STAMP)
	$(BIN)/tensorlab server install

demo: setup
	$(BIN)/tensorlab server start
	$(BIN)/python demo_notebooks/quickstart.py

test: setup
	$(BIN)/python -m pytest tests

lint: $(STAMP)
	$(BIN)/ruff check .

bench: setup
	$(BIN)/python benchmarks/bench_tensordb.py
	$(BIN)/python benchmarks/bench_training.py

clean:
	rm -rf $(VENV) build dist *.egg-info
