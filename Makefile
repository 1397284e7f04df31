# Two entry points for a fresh machine: `make demo` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup server labextension demo test lint bench notebooks clean

# The JupyterLab extension's front end (labextension/), built by Node into tensorlab/lab/labextension/.
LABEXT         := tensorlab/lab/labextension/package.json
LABEXT_SOURCES := $(wildcard labextension/src/*.ts labextension/src/*/*.ts labextension/src/*/*.css labextension/style/* \
                  labextension/schema/*) \
                  labextension/package.json labextension/package-lock.json labextension/tsconfig.json
LABEXT_LINKED  := $(VENV)/.labextension-linked
# The notebook panels' chart view: the same chart modules bundled by esbuild as an ES module for anywidget.
WIDGET_VIEW    := widgets/static/charts.js

setup: $(STAMP) $(LABEXT_LINKED) $(WIDGET_VIEW) server

labextension: $(LABEXT) $(WIDGET_VIEW)

# Node is installed when missing (Debian's nodejs/npm through apt); npm ci follows the lockfile, once per change of it.
NODE_MODULES := labextension/node_modules/.package-lock.json

$(NODE_MODULES): labextension/package-lock.json
	bash labextension/ensure-node.sh
	cd labextension && npm ci --no-audit --no-fund --loglevel=error

$(LABEXT): $(LABEXT_SOURCES) $(NODE_MODULES)
	cd labextension && npm run build

$(WIDGET_VIEW): $(LABEXT_SOURCES) $(NODE_MODULES)
	cd labextension && npm run build:widget

# An editable install carries no data files: link the built front end into the venv (rebuilds show at once)
# and enable the server half there; a wheel installs both as data files instead.
$(LABEXT_LINKED): $(STAMP) $(LABEXT) jupyter-config/server-config/tensorlab.json
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/jupyter labextension develop --overwrite .
	mkdir -p $(VENV)/etc/jupyter/jupyter_server_config.d
	cp jupyter-config/server-config/tensorlab.json $(VENV)/etc/jupyter/jupyter_server_config.d/tensorlab.json
	touch $(LABEXT_LINKED)

$(STAMP): setup.py | $(LABEXT)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	@# Large wheels (TensorFlow is 570 MB) sometimes break off mid-download: resume, and retry the whole install.
	for attempt in 1 2 3; do \
	  $(BIN)/python -m pip install -q --retries 10 --resume-retries 30 -e ".[dev]" && break; \
	  if [ $$attempt = 3 ]; then exit 1; fi; echo "pip install failed (attempt $$attempt of 3); retrying"; sleep 15; \
	done
	touch $(STAMP)

# FerretDB is built only when no external server is configured.
server: $(STAMP)
	@if [ -z "$$TENSORLAB_MONGODB_URI" ]; then $(BIN)/tensorlab server install; \
	else echo "using TENSORLAB_MONGODB_URI; FerretDB not needed"; fi

NOTEBOOKS := demo_notebooks
# Outside demo_notebooks/, which `make test` runs under nbval.
EXECUTED  := executed
# Notebook kernels use this profile: C++ log lines stay out of the cells' saved outputs.
export IPYTHONDIR := $(CURDIR)/$(NOTEBOOKS)/ipython

demo: setup
	@if [ -z "$$TENSORLAB_MONGODB_URI" ]; then $(BIN)/tensorlab server start; fi
	$(BIN)/jupyter nbconvert --to notebook --execute --ExecutePreprocessor.timeout=600 \
		--output-dir $(EXECUTED) $(NOTEBOOKS)/TensorLabDemo.ipynb
	@echo "Executed demo notebook: $(EXECUTED)/TensorLabDemo.ipynb (open it with: $(BIN)/jupyter lab $(EXECUTED)/TensorLabDemo.ipynb)"

test: setup
	$(BIN)/python -m pytest tests $(NOTEBOOKS) --nbval --nbval-sanitize-with $(NOTEBOOKS)/sanitize.cfg \
		--nbval-cell-timeout=600

# Re-run every notebook in place so the saved outputs match the code (commit the result).
notebooks: setup
	$(BIN)/jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=600 $(NOTEBOOKS)/*.ipynb

lint: $(STAMP) $(LABEXT)
	$(BIN)/ruff check .
	cd labextension && npm run lint

bench: setup
	$(BIN)/python benchmarks/bench_tensordb.py
	$(BIN)/python benchmarks/bench_training.py
	$(BIN)/python benchmarks/bench_widgets.py
	$(BIN)/python benchmarks/bench_workers.py
	$(BIN)/python benchmarks/bench_logging.py
	$(BIN)/python benchmarks/bench_history.py
	$(BIN)/python benchmarks/bench_stress.py
	$(BIN)/python benchmarks/bench_lab.py

clean:
	rm -rf $(VENV) build dist *.egg-info labextension/node_modules labextension/lib labextension/.core tensorlab/lab/labextension
