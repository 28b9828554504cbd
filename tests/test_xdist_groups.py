"""`make test` runs on pytest-xdist with `--dist loadgroup`: tests that build on another's state (the tiny DAG's two
flow runs) or use the smoke repo in place carry an `xdist_group` mark so that one worker runs them all. A pytest or
xdist version that stops honouring the mark (pytest 9.2 did, silently) would split them across workers."""

import re
import subprocess
import sys
from collections import defaultdict

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


def test_every_test_of_an_xdist_group_runs_on_one_worker(tmp_path):
    (tmp_path / "test_grouped.py").write_text(GROUPED_TESTS)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-n",
            "2",
            "--dist",
            "loadgroup",
            "-v",
            "-p",
            "no:cacheprovider",
            "test_grouped.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    workers = defaultdict(set)
    for worker, test in re.findall(r"\[(gw\d+)\] \[\s*\d+%\] PASSED \S*::(test_\w+)\[", result.stdout):
        workers[test].add(worker)
    assert {test: len(ran_on) for test, ran_on in workers.items()} == {
        "test_module_marked": 1,
        "test_function_marked": 1,
    }, result.stdout[-3000:]
