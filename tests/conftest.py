"""Fixtures shared across test files."""

import sys

import pytest

from tests._repo import copy_repo, run, smoke_params


@pytest.fixture(scope="session")
def smoke_repo(tmp_path_factory):
    """The smoke preset built by the whole-DAG Prefect flow (`python -m pipeline.dag`, one `dvc repro --single-item`
    task per stage) in a temporary copy of the repo; its stdout carries each stage's DVC output."""
    root = tmp_path_factory.mktemp("repo")
    env = copy_repo(root, smoke_params())
    first = run([sys.executable, "-m", "pipeline.dag"], root, env)
    return root, env, first
