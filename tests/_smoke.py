"""The test session's Prefect server and smoke pipeline, started in the background when the session begins.

The end-to-end tests need both, and building the smoke pipeline takes minutes: started first and run beside the
unit tests (which the session orders first), the build is done, or nearly, when the first end-to-end test asks for
it. One launcher serves every pytest-xdist worker of the session: whichever worker comes first starts it (under a
file lock in the directory the workers share), and it stops, taking the server and any unfinished build with it,
once the pytest process that owns the session is gone.

    python -m tests._smoke SHARED_DIR SESSION_PID [--build]

What it leaves in SHARED_DIR, each file written whole (renamed into place):
    prefect.url                  the server's API URL, once it answers
    smoke/                       the smoke repo (a copy of this repo with configs/smoke.yaml as params.yaml)
    smoke.stdout, smoke.stderr   the output of `python -m pipeline.dag` building it
    smoke.rc                     its exit status, once it ended
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pipeline.prefect_server import prefect_server

from tests._repo import copy_repo, smoke_params

POLL_SECONDS = 1.0


def write_whole(path: Path, text: str) -> None:
    staging = path.with_name(f".{path.name}.tmp")
    staging.write_text(text)
    staging.replace(path)


def alive(pid: int) -> bool:
    """Whether process `pid` runs: not gone, and not a zombie its parent has yet to reap."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().rpartition(")")[2].split()[0] != "Z"


def serve(shared: Path, session_pid: int, build: bool) -> None:
    with prefect_server(shared / "prefect") as url:
        write_whole(shared / "prefect.url", url)
        if build:
            root = shared / "smoke"
            root.mkdir()
            env = copy_repo(root, smoke_params(), url)
            with (shared / "smoke.stdout").open("w") as stdout, (shared / "smoke.stderr").open("w") as stderr:
                dag = subprocess.Popen(  # its own process group: stopping it stops DVC and the stage under it
                    [sys.executable, "-m", "pipeline.dag"],
                    cwd=root,
                    env=env,
                    stdout=stdout,
                    stderr=stderr,
                    start_new_session=True,
                )
                try:
                    while dag.poll() is None and alive(session_pid):
                        time.sleep(POLL_SECONDS)
                finally:
                    if dag.poll() is None:
                        os.killpg(dag.pid, signal.SIGTERM)
                        dag.wait(timeout=60)
            write_whole(shared / "smoke.rc", str(dag.returncode))
        while alive(session_pid):
            time.sleep(POLL_SECONDS)


def stop(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, stop)
    shared_dir, pid, *flags = sys.argv[1:]
    serve(Path(shared_dir), int(pid), build="--build" in flags)
