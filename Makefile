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
NOT_312 := _312\.py$$|py312_
COMPILE := $(BIN)/python -m compileall -q -j 0 -x '$(NOT_312)' $(VENV)/lib > /dev/null
# `make test` installs the lock itself (every package it names, at its version: --no-deps) in two pip processes at
# once, torch's packages and the others, each group byte-compiled once it is in (about 25 s less than one after
# another here: 1 min 9 s to 1 min 19 s against 1 min 30 s to 1 min 41 s, ruff included).
PIP_LOCKED := $(BIN)/pip install --quiet --no-compile --no-deps
HEAVY := torch|torchvision|triton
HEAVY_LINES := ^($(HEAVY)|nvidia-[a-z0-9-]+)==
HEAVY_DIRS := $(foreach package,$(subst |, ,$(HEAVY)),$(VENV)/lib/python3*/site-packages/$(package))

.PHONY: repro test test-fast demo chromium setup lock clean-venv locked-heavy locked-rest

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

# The test tools, the demo's web app and the browser test's driver, for `make test` and `make demo` only: the whole
# lock (the environment the suite passed in: the project's extras too), then the project without its dependencies,
# and `pip check` that the lock holds all of them. A superset of $(TORCH_STAMP)'s and $(STAMP)'s, which it marks
# done too.
$(EXTRAS_STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) pip setuptools
	$(MAKE) --no-print-directory -j 2 locked-heavy locked-rest
	$(BIN)/pip check
	touch $(TORCH_STAMP) $(STAMP) $@

locked-heavy:
	grep -E '$(HEAVY_LINES)' $(LOCK) | $(PIP_LOCKED) -r /dev/stdin
	$(BIN)/python -m compileall -q -j 0 -x '$(NOT_312)' $(HEAVY_DIRS) > /dev/null

locked-rest:
	grep -vE '$(HEAVY_LINES)' $(LOCK) | $(PIP_LOCKED) -r /dev/stdin
	$(PIP_LOCKED) -e .
	$(BIN)/python -m compileall -q -j 0 -x '$(NOT_312)|/site-packages/($(HEAVY))/' $(VENV)/lib > /dev/null

# After changing a dependency in pyproject.toml: install it (`.venv/bin/pip install -e '.[dev,demo,browser]'`),
# then `make lock` (`make test` installs from the lock, and its `pip check` fails on a dependency the lock lacks),
# run `make test`, and commit the lock. Written to a temporary file first, so a failed
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
	$(BIN)/python -m pytest -n auto --dist loadgroup --no-loadscope-reorder

test-fast: $(EXTRAS_STAMP) chromium
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n auto --dist loadgroup --no-loadscope-reorder -m "not e2e"

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
