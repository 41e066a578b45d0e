# Factorion — every target sets itself up (the .venv stamp) before it runs.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
PYTHON  := $(BIN)/python
# torch: pinned to the CPU build that lies on this machine's disk (an unpinned
# torch pulls a multi-GB CUDA build). Override on a GPU box: make install TORCH=torch
TORCH   ?= torch==2.13.0
STAMP   := $(VENV)/.installed
BLUEPRINTS ?=
export WANDB_MODE ?= offline

.PHONY: install test test-all lint bench data pretrain finetune evaluate demo clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PYTHON) || $(PY) -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip
	$(PYTHON) -m pip install -q "$(TORCH)"
	$(PYTHON) -m pip install -q -e ".[dev]"
	touch $(STAMP)

test: $(STAMP)
	$(PYTHON) -m pytest -m "not slow" tests

test-all: $(STAMP)
	$(PYTHON) -m pytest tests

lint: $(STAMP)
	$(BIN)/ruff check factorion pipeline tests benchmarks

bench: $(STAMP)
	$(PYTHON) -m benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
