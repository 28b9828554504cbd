"""A temporary copy of this repo running the smoke preset: shared by the end-to-end tests."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def run(command: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


def copy_repo(root: Path, params: dict) -> dict:
    """Copy this repo's source (tracked and unignored files: no data, no caches) into a fresh git repo
    at `root` with `params` as params.yaml; return the environment to run its stages in."""
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
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "PREFECT_HOME": str(root / ".prefect"),
    }
    git = ["git", "-c", "user.name=egsynth-test", "-c", "user.email=test@egsynth"]
    run([*git, "init", "-q"], root, env)
    run([*git, "add", "-A"], root, env)
    run([*git, "commit", "-q", "-m", "test copy"], root, env)
    return env


def smoke_params() -> dict:
    return yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
