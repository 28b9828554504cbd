# Two commands, each bootstrapping .venv on a machine that has only Python 3.11 and git.
#   make repro   set up, then run the whole pipeline (dvc repro) on params.yaml
#   make test    set up, then run the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
TORCH_STAMP := $(VENV)/.torch-stamp
TORCH  := torch==2.14.1 torchvision==0.29.1

.PHONY: repro test setup clean-venv

setup: $(STAMP)

# torch first, pinned, so pip never replaces it with a downloaded build; a stamp, so an
# interrupted install is retried rather than mistaken for a finished one.
$(TORCH_STAMP):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH)
	touch $@

# Re-install the project only when pyproject.toml changed.
$(STAMP): pyproject.toml $(TORCH_STAMP)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Stage commands run `python -m pipeline.<stage>`: put the venv first on PATH for them.
repro: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc repro

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

clean-venv:
	rm -rf $(VENV)
