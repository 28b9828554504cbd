"""Fixtures shared across test files."""

import sys

import pytest

from tests._repo import copy_repo, run, smoke_params


@pytest.fixture(scope="session")
def smoke_repo(tmp_path_factory):
    """`dvc repro` of the smoke preset in a temporary copy of the repo."""
    root = tmp_path_factory.mktemp("repo")
    env = copy_repo(root, smoke_params())
    first = run([sys.executable, "-m", "dvc", "repro"], root, env)
    return root, env, first
