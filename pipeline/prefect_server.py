"""Run a command under one local Prefect server, which every stage process the command starts reports to.

Without `PREFECT_API_URL` each stage process starts a temporary Prefect server of its own (7 s, 13 s the first
time: `benchmarks/prefect_overhead.py`); `make repro` runs the whole-DAG flow under one server instead:

    python -m pipeline.prefect_server python -m pipeline.dag [ARGS...]
    python -m pipeline.prefect_server dvc repro [ARGS...]

The server keeps its database where the temporary servers keep theirs (`$PREFECT_HOME`, `.prefect/` in the
repo), logs to `.prefect/server.log`, and stops when the command ends; the exit status is the command's. With
`PREFECT_API_URL` already set (a server of your own), the command runs against it and none is started.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

STARTUP_TIMEOUT_SECONDS = 300  # a fresh database is migrated first: minutes on a loaded two-core machine


class PrefectServerError(RuntimeError):
    """The server exited (the message ends with its log) or did not answer in time (the message names its log)."""


@contextmanager
def prefect_server(home: Path) -> Iterator[str]:
    """A local Prefect server (`prefect server start`, its database and log under `home`) for as long as the
    context lasts; yields its API URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
    }
    env.pop("PREFECT_API_URL", None)
    command = [str(Path(sys.executable).parent / "prefect"), "server", "start", "--host", "127.0.0.1"]
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / "server.log"
    url = f"http://127.0.0.1:{port}/api"
    with log_path.open("wb") as log:
        server = subprocess.Popen([*command, "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
            while True:
                if server.poll() is not None:
                    raise PrefectServerError(f"prefect server exited; {log_path}:\n{log_path.read_text()[-3000:]}")
                if time.monotonic() > deadline:
                    raise PrefectServerError(
                        f"prefect server did not answer within {STARTUP_TIMEOUT_SECONDS} s; see {log_path}"
                    )
                with suppress(OSError), urllib.request.urlopen(f"{url}/health", timeout=5) as answer:
                    if answer.status == 200:
                        break
                time.sleep(0.5)
            yield url
        finally:
            server.terminate()
            server.wait(timeout=60)


def run_under_server(command: Sequence[str]) -> int:
    """Run `command` with `PREFECT_API_URL` pointing at a server (this one's unless one is set); its exit status."""
    if os.environ.get("PREFECT_API_URL"):
        return subprocess.run(command).returncode
    home = Path(os.environ.get("PREFECT_HOME", Path.cwd() / ".prefect"))
    with prefect_server(home) as url:
        return subprocess.run(command, env={**os.environ, "PREFECT_API_URL": url}).returncode


def main(argv: Sequence[str]) -> int:
    if not argv:
        sys.exit("usage: python -m pipeline.prefect_server COMMAND [ARGS...]")
    if shutil.which(argv[0]) is None:  # before a server is started for it
        sys.exit(f"prefect_server: {argv[0]}: no such command")
    try:
        return run_under_server(argv)
    except PrefectServerError as error:
        sys.exit(f"prefect_server: {error}")
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
