# Two commands: `make demo` (set up + run the Two-Room demo) and `make test` (the test suite).
# The virtual environment is created on first use; torch is pinned to the CPU wheel, and every
# other package to the tested versions in constraints.txt.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.lewm-mpc-installed

.PHONY: demo test lint clean-venv

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev,envs,plots,tb,lerobot]" -c constraints.txt
	touch $(STAMP)

demo: $(STAMP)
	MUJOCO_GL=egl $(BIN)/lewm-mpc demo

test: $(STAMP)
	MUJOCO_GL=egl $(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples

clean-venv:
	rm -rf $(VENV)
