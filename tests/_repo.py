"""Temporary copies of this repo running the smoke preset, and what the end-to-end tests read of them."""

import os
import shutil
import sqlite3
import subprocess
import sys
import traceback
from contextlib import chdir, closing
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
# what an experiment that changes only the evaluation's params re-runs
EVALUATION_STAGES = {"tasks", "evaluate@full", "evaluate@gap", "baselines", "report"}


def run(command: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


def egsynth_here(root: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    """`egsynth ARGS` run by this process (Typer's test runner) in `root` with `env`'s MLflow store and Prefect
    settings: the command's own code without a fresh interpreter's seconds of imports (the README's test runs the
    installed command). An exception the command did not turn into an exit shows as a traceback on stderr."""
    from typer.testing import CliRunner

    from egsynth.cli import app

    overrides = {name: value for name, value in env.items() if name.startswith(("MLFLOW_", "PREFECT_"))}
    with chdir(root):
        result = CliRunner().invoke(app, list(args), env=overrides)
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(result.exception))
    return subprocess.CompletedProcess(["egsynth", *args], result.exit_code, result.stdout, stderr)


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


def smoke_params() -> dict:
    return yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
