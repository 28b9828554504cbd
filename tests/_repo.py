"""Temporary copies of this repo running the smoke preset, and the Prefect server they report to: shared by the
end-to-end tests."""

import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import closing, contextmanager, suppress
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
# what an experiment that changes only the evaluation's params re-runs
EVALUATION_STAGES = {"tasks", "evaluate@full", "evaluate@gap", "baselines", "report"}


def run(command: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


def copy_repo(root: Path, params: dict, prefect_api: str | None = None) -> dict:
    """Copy this repo's source (tracked and unignored files: no data, no caches) into a fresh git repo
    at `root` with `params` as params.yaml; return the environment to run its stages in (reporting to
    the Prefect server at `prefect_api`, if given, rather than each stage starting a temporary one)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for name in filter(None, listed.split("\0")):
        if (REPO / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name)
    (root / "dvc.lock").unlink(missing_ok=True)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = stage_env(root, prefect_api)
    git = ["git", "-c", "user.name=egsynth-test", "-c", "user.email=test@egsynth"]
    run([*git, "init", "-q"], root, env)
    run([*git, "add", "-A"], root, env)
    run([*git, "commit", "-q", "-m", "test copy"], root, env)
    return env


def stage_env(root: Path, prefect_api: str | None = None) -> dict:
    """The environment to run the stages of the repo copy at `root` in: this interpreter's commands first, the
    copy's own MLflow store and Prefect home, and the Prefect server at `prefect_api` if given."""
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "PREFECT_HOME": str(root / ".prefect"),
    }
    if prefect_api:
        env["PREFECT_API_URL"] = prefect_api
    return env


def copy_built_repo(source: Path, env: dict, target: Path) -> dict:
    """A copy of a built repo (workspace, git, DVC cache, Prefect home, MLflow store), so that runs in it
    leave the original and the tests that share it alone; returns the environment to run its stages in.
    The store's artifact locations are absolute paths into the original: they are moved into the copy."""
    shutil.copytree(
        source, target, symlinks=True, ignore=lambda folder, names: {"tmp"} if folder == str(source / ".dvc") else set()
    )
    with closing(sqlite3.connect(target / "mlflow.db")) as store, store:
        for table, column in (("experiments", "artifact_location"), ("runs", "artifact_uri")):
            store.execute(f"UPDATE {table} SET {column} = replace({column}, ?, ?)", (str(source), str(target)))
    return {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{target / 'mlflow.db'}", "PREFECT_HOME": str(target / ".prefect")}


def stage_runs_of_experiment(root: Path, env: dict, name: str) -> dict[str, dict[str, str]]:
    """Stage name -> tags of the MLflow stage runs made inside DVC experiment `name`."""
    from mlflow import MlflowClient

    from egsynth.tracking import store

    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name(store.DEFAULT_EXPERIMENT)
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`egsynth.dvc_exp_name` = '{name}' and tags.`egsynth.kind` = 'stage'",
        max_results=100,
    )
    return {run.data.tags[store.STAGE]: run.data.tags for run in runs}


@contextmanager
def prefect_server(home: Path) -> Iterator[str]:
    """A local Prefect server (`prefect server start`, its database under `home`) for as long as the
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
    log = (home / "server.log").open("wb")
    server = subprocess.Popen([*command, "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 300
        while True:
            assert server.poll() is None, f"prefect server exited: {(home / 'server.log').read_text()[-3000:]}"
            assert time.monotonic() < deadline, "prefect server did not answer within 300 s"
            with suppress(OSError), urllib.request.urlopen(f"{url}/health", timeout=5) as answer:
                if answer.status == 200:
                    break
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()


def smoke_params() -> dict:
    return yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
