"""Fixtures shared across test files."""

import sys

import pytest

from tests._repo import copy_repo, prefect_server, run, smoke_params

# The first end-to-end test also builds the smoke pipeline (about 5 minutes alone, twice that on a loaded
# two-core machine, and the fixture counts toward the first test's time): end-to-end tests get 30 minutes.
E2E_TIMEOUT_SECONDS = 1800


def pytest_collection_modifyitems(items):
    for item in items:
        if item.get_closest_marker("e2e") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(E2E_TIMEOUT_SECONDS))


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory):
    """One Prefect server for the end-to-end tests: without it, every stage process they run would start
    (and migrate) a temporary server of its own, about 10 s each."""
    with prefect_server(tmp_path_factory.mktemp("prefect")) as url:
        yield url


@pytest.fixture(scope="session")
def smoke_repo(tmp_path_factory, prefect_api):
    """The smoke preset built by the whole-DAG Prefect flow (`python -m pipeline.dag`, one `dvc repro --single-item`
    task per stage) in a temporary copy of the repo; its stdout carries each stage's DVC output. It and every
    copy of it report to the `prefect_api` server."""
    root = tmp_path_factory.mktemp("repo")
    env = copy_repo(root, smoke_params(), prefect_api)
    first = run([sys.executable, "-m", "pipeline.dag"], root, env)
    return root, env, first
