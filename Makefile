# One-command entry points. `make test` and `make demo` build .venv on a new machine first.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
TORCH_SPEC ?= torch==2.13.0
MMCV_SPEC ?= mmcv==2.1.0
DATA_DIR ?= data

.PHONY: install test demo lint bench clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first, then mmcv built from source against it with its compiled ops (no binary wheel
# exists; pip caches the built wheel, so this takes seconds after the first ~12-minute build).
$(VENV)/.mmcv-installed: | $(BIN)/python
	$(PIP) install "$(TORCH_SPEC)"
	$(PIP) install "setuptools<75" wheel numpy
	$(BIN)/python -c "import mmcv.ops" 2>/dev/null || \
		MMCV_WITH_OPS=1 MAX_JOBS=$${MAX_JOBS:-2} $(PIP) install --no-build-isolation "$(MMCV_SPEC)"
	$(BIN)/python -c "from mmcv.ops import MultiScaleDeformableAttention"
	$(PIP) install "setuptools>=77.0.3"
	touch $@

$(VENV)/.deps-installed: pyproject.toml $(VENV)/.mmcv-installed
	$(PIP) install -e ".[dev]"
	touch $@

install: $(VENV)/.deps-installed

test: install
	$(BIN)/python -m pytest

demo: install
	$(BIN)/llmformer demo --data-dir $(DATA_DIR)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install
	@for script in benchmarks/[!_]*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean-venv:
	rm -rf $(VENV)
