"""`make test` runs on pytest-xdist with `--dist loadgroup`: tests that build on another's state (the tiny DAG's two
flow runs) or use the smoke repo in place carry an `xdist_group` mark so that one worker runs them all. A pytest or
xdist version that stops honouring the mark (pytest 9.2 did, silently) would split them across workers, and so would
a mark added after xdist read the marks (tests/conftest.py adds its marks at collection). tests/conftest.py also
groups the longest test that needs the smoke repo with the last two unit tests, so that nothing else waits queued
behind it."""

import os
import re
import subprocess
import sys
from collections import defaultdict

from tests._repo import REPO

GROUPED_TESTS = """
import pytest

pytestmark = pytest.mark.xdist_group("by-module")


@pytest.mark.parametrize("case", range(6))
def test_module_marked(case):
    pass


@pytest.mark.xdist_group("by-function")
@pytest.mark.parametrize("case", range(6))
def test_function_marked(case):
    pass
"""

# The suite's own collection hook, on stand-ins for the smoke repo's fixtures.
SUITE_CONFTEST = """
import pytest

from tests.conftest import pytest_collection_modifyitems


@pytest.fixture
def smoke_repo():
    return None


@pytest.fixture
def smoke_copy(smoke_repo):
    return None
"""

SMOKE_TESTS = """
import pytest


@pytest.mark.parametrize("case", range(6))
def test_in_place(smoke_repo, case):
    pass


@pytest.mark.long(seconds=89)
@pytest.mark.parametrize("case", [0])
def test_longest_copy(smoke_copy, case):
    pass


@pytest.mark.long(seconds=42)
@pytest.mark.parametrize("case", [0])
def test_second_longest_copy(smoke_copy, case):
    pass


@pytest.mark.parametrize("case", range(4))
def test_unit(case):
    pass
"""


def test_every_test_of_an_xdist_group_runs_on_one_worker(tmp_path):
    (tmp_path / "test_grouped.py").write_text(GROUPED_TESTS)
    (tmp_path / "test_smoke.py").write_text(SMOKE_TESTS)
    (tmp_path / "conftest.py").write_text(SUITE_CONFTEST)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-n",
            "2",
            "--dist",
            "loadgroup",
            "--no-loadscope-reorder",
            "-v",
            "-p",
            "no:cacheprovider",
            "test_grouped.py",
            "test_smoke.py",
        ],
        cwd=tmp_path,
        env=os.environ | {"PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    runs = defaultdict(list)  # worker -> the tests it ran, in order
    for worker, test in re.findall(r"\[(gw\d+)\] \[\s*\d+%\] PASSED \S*::(test_\w+\[[^\]]*\])", result.stdout):
        runs[worker].append(test)
    workers = defaultdict(set)
    for worker, tests in runs.items():
        for test in tests:
            workers[test.split("[")[0]].add(worker)
    grouped = ("test_module_marked", "test_function_marked", "test_in_place")
    assert {test: len(workers[test]) for test in grouped} == dict.fromkeys(grouped, 1), result.stdout[-3000:]
    (tests,) = [tests for tests in runs.values() if "test_longest_copy[0]" in tests]
    start = tests.index("test_longest_copy[0]")
    assert tests[start : start + 3] == ["test_longest_copy[0]", "test_unit[2]", "test_unit[3]"], result.stdout[-3000:]
