"""`python -m pipeline.prefect_server COMMAND`: `make repro` runs the whole-DAG flow under one Prefect server."""

import os
import subprocess
import sys
import urllib.request

import pytest

from tests._repo import REPO

ANSWER_HEALTH = (
    "import os, sys, urllib.request\n"
    "url = os.environ['PREFECT_API_URL']\n"
    "print(url)\n"
    "with urllib.request.urlopen(url + '/health', timeout=10) as answer:\n"
    "    sys.exit(0 if answer.status == 200 else 1)\n"
)


def under_server(*command: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.prefect_server", *command], cwd=REPO, env=env, capture_output=True, text=True
    )


def test_a_server_of_your_own_is_used_as_it_is_and_the_exit_status_is_the_commands(tmp_path):
    env = {**os.environ, "PREFECT_API_URL": "http://127.0.0.1:9/api", "PREFECT_HOME": str(tmp_path)}
    result = under_server(
        sys.executable, "-c", "import os; print(os.environ['PREFECT_API_URL']); raise SystemExit(3)", env=env
    )
    assert (result.returncode, result.stdout) == (3, "http://127.0.0.1:9/api\n")
    assert not any(tmp_path.iterdir()), "no server was started, nothing written to PREFECT_HOME"


def test_no_command_is_a_usage_line_and_an_unknown_one_is_named_before_any_server_starts(tmp_path):
    result = under_server(env=os.environ.copy())
    assert result.returncode != 0 and result.stderr.strip().startswith("usage: python -m pipeline.prefect_server")
    env = {key: value for key, value in os.environ.items() if key != "PREFECT_API_URL"} | {
        "PREFECT_HOME": str(tmp_path)
    }
    result = under_server("no-such-command-here", "repro", env=env)
    assert (result.returncode, result.stderr) == (1, "prefect_server: no-such-command-here: no such command\n")
    assert not any(tmp_path.iterdir()), "no server was started"


@pytest.mark.e2e
def test_the_command_reaches_a_started_server_which_stops_with_it(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != "PREFECT_API_URL"}
    result = under_server(sys.executable, "-c", ANSWER_HEALTH, env=env | {"PREFECT_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-3000:]
    url = result.stdout.strip()
    assert url.startswith("http://127.0.0.1:") and (tmp_path / "server.log").is_file()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{url}/health", timeout=5)
