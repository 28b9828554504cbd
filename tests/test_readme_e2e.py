"""The README's user guide, tried as a new user would: every fenced shell block marked
`<!-- runnable -->` runs as written, in order, in the smoke repo."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests._repo import REPO

pytestmark = pytest.mark.e2e

RUNNABLE = re.compile(r"<!-- runnable -->\n```bash\n(.*?)```", re.DOTALL)


def runnable_blocks() -> list[str]:
    return RUNNABLE.findall((REPO / "README.md").read_text())


def test_the_guide_marks_its_commands_runnable():
    blocks = runnable_blocks()
    commands = "\n".join(blocks)
    assert len(blocks) >= 4
    for command in ("synthesize", "interpolate", "extrapolate", "lineage", "runs", "compare", "dvc exp run"):
        assert command in commands, f"the guide runs no `{command}`"


def test_every_runnable_command_of_the_guide_runs_as_written(smoke_repo):
    root, env, _ = smoke_repo
    env = {**env, "PATH": f"{Path(sys.executable).parent}:{env['PATH']}"}
    for number, block in enumerate(runnable_blocks(), start=1):
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block], cwd=root, env=env, capture_output=True, text=True
        )
        output = result.stdout[-3000:] + result.stderr[-3000:]
        assert result.returncode == 0, f"runnable block {number} failed:\n{block}\n{output}"
        assert "Traceback" not in result.stdout + result.stderr, f"runnable block {number}:\n{output}"
