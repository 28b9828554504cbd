# Commands, each bootstrapping .venv on a machine that has only Python 3.11 and git.
#   make repro   set up, then run the whole pipeline (each stage through dvc repro) on params.yaml
#   make test    set up with the demo's extras, then run the test suite (the browser test needs Debian's chromium:
#                installed here when running as root, else that test is skipped, saying so)
#   make test-fast  the same without the end-to-end tests
#   make demo    set up with the demo's extras, then serve `egsynth demo` on the trained models
#   make lock    rewrite requirements.lock from the packages installed in .venv
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
TORCH_STAMP := $(VENV)/.torch-stamp
EXTRAS_STAMP := $(VENV)/.extras-stamp
# Every package and exact version of the environment the suite passed in (pip freeze), as pip
# constraints: pip installs nothing the project does not need, and nothing at another version.
LOCK   := requirements.lock
# pip byte-compiles what it installs on one core; compileall does the same on all of them (27 s less of the install
# here). The .pyc files must exist: with PYTHONDONTWRITEBYTECODE set (as on this project's machines) nothing else
# writes them, and every process would compile its imports again (about 6 s a stage). Skipped: the two modules
# written for Python 3.12, which pip fails to compile too.
PIP_INSTALL := $(BIN)/pip install --quiet --no-compile -c $(LOCK)
COMPILE := $(BIN)/python -m compileall -q -j 0 -x '_312\.py$$|py312_' $(VENV)/lib > /dev/null

.PHONY: repro test test-fast demo chromium setup lock clean-venv

setup: $(STAMP)

# torch first, at the lock's version, so pip never replaces it with a downloaded build; a stamp, so
# an interrupted install is retried rather than mistaken for a finished one.
$(TORCH_STAMP): $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) pip setuptools
	$(PIP_INSTALL) torch torchvision
	$(COMPILE)
	touch $@

# Re-install the project when pyproject.toml or the lock changed: what the pipeline needs, nothing more (`make repro`
# is timed; the test tools come with the extras below).
$(STAMP): pyproject.toml $(LOCK) $(TORCH_STAMP)
	$(PIP_INSTALL) -e .
	$(COMPILE)
	touch $(STAMP)

# The test tools, the demo's web app and the browser test's driver, for `make test` and `make demo` only: the
# project with its extras in one install (a superset of $(STAMP)'s, which it marks done too, so a fresh
# `make test` builds the project once).
$(EXTRAS_STAMP): pyproject.toml $(LOCK) $(TORCH_STAMP)
	$(PIP_INSTALL) -e '.[dev,demo,browser]'
	$(COMPILE)
	touch $(STAMP) $@

# After changing a dependency in pyproject.toml: install it (`.venv/bin/pip install -e '.[dev]'`), run
# the tests, then `make lock` and commit the lock. Written to a temporary file first, so a failed
# freeze leaves the old lock whole.
lock:
	$(BIN)/pip freeze --all --exclude-editable > $(LOCK).tmp
	mv $(LOCK).tmp $(LOCK)
	touch $(TORCH_STAMP) $(STAMP) $(EXTRAS_STAMP)

# The whole DAG as one Prefect flow (pipeline/dag.py): `dvc repro --single-item` per stage, two independent stages at
# a time, every stage reporting to one Prefect server rather than starting a temporary one in its own process.
repro: $(STAMP)
	$(BIN)/python -m pipeline.prefect_server $(BIN)/python -m pipeline.dag

# Tests run on one pytest-xdist worker per core; the end-to-end ones last, while the smoke pipeline they share builds
# in the background (tests/conftest.py). test-fast leaves the end-to-end tests out: the inner loop.
test: $(EXTRAS_STAMP) chromium
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n auto --dist loadgroup

test-fast: $(EXTRAS_STAMP) chromium
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n auto --dist loadgroup -m "not e2e"

demo: $(EXTRAS_STAMP)
	$(BIN)/egsynth demo

# Debian's chromium for the browser test (Playwright drives it; no browser is ever downloaded): installed when
# missing and running as root; otherwise say so, and the test skips with the same advice.
chromium:
	@if command -v chromium >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	else echo "chromium is missing: 'sudo apt-get install chromium' runs the browser test (skipped until then)"; fi

clean-venv:
	rm -rf $(VENV)
