# Two commands on a fresh machine (Python >= 3.10, nothing else):  make demo   |   make test
# Both create or refresh .venv by themselves.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# A CPU build of torch unless a CUDA driver is present; GPU users may override, e.g. TORCH_SPEC='torch>=2.4'.
TORCH_SPEC ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo 'torch>=2.4' || echo 'torch==2.13.0')
DEMO_DIR ?= runs/demo
PYTEST_ARGS ?=

.PHONY: setup demo test clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

demo: setup
	$(BIN)/fm demo --workdir $(DEMO_DIR)

test: setup
	$(BIN)/ruff check fm data_prep scripts tests
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) runs
