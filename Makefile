# Two commands, each bootstrapping .venv on a machine that has only Python 3.11 and git.
#   make repro   set up, then run the whole pipeline (dvc repro) on params.yaml
#   make test    set up, then run the test suite
#   make lock    rewrite requirements.lock from the packages installed in .venv
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
TORCH_STAMP := $(VENV)/.torch-stamp
# Every package and exact version of the environment the suite passed in (pip freeze), as pip
# constraints: pip installs nothing the project does not need, and nothing at another version.
LOCK   := requirements.lock

.PHONY: repro test setup lock clean-venv

setup: $(STAMP)

# torch first, at the lock's version, so pip never replaces it with a downloaded build; a stamp, so
# an interrupted install is retried rather than mistaken for a finished one.
$(TORCH_STAMP): $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c $(LOCK) pip setuptools
	$(BIN)/pip install --quiet -c $(LOCK) torch torchvision
	touch $@

# Re-install the project when pyproject.toml or the lock changed.
$(STAMP): pyproject.toml $(LOCK) $(TORCH_STAMP)
	$(BIN)/pip install --quiet -c $(LOCK) -e '.[dev]'
	touch $(STAMP)

# After changing a dependency in pyproject.toml: install it (`.venv/bin/pip install -e '.[dev]'`), run
# the tests, then `make lock` and commit the lock. Written to a temporary file first, so a failed
# freeze leaves the old lock whole.
lock:
	$(BIN)/pip freeze --all --exclude-editable > $(LOCK).tmp
	mv $(LOCK).tmp $(LOCK)
	touch $(TORCH_STAMP) $(STAMP)

# Stage commands run `python -m pipeline.<stage>`: put the venv first on PATH for them.
repro: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc repro

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest

clean-venv:
	rm -rf $(VENV)
