"""Temporary git and DVC workspaces for the provenance and tracking tests."""

import os
import subprocess
from pathlib import Path

# where dvc 3.67 puts experiment copies: queued runs, and `dvc exp run --temp`
EXP_COPIES = [".dvc/tmp/exps/tmpabc", ".dvc/tmp/exps/standalone/tmpabc"]


def sh(*args: str, cwd: Path) -> str:
    """Run a command outside this test's DVC/MLflow environment; its stdout, or its output in the failure."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DVC_", "MLFLOW_", "EGSYNTH_"))}
    done = subprocess.run(args, cwd=cwd, env=env | {"DVC_NO_ANALYTICS": "1"}, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def git_init(repo: Path) -> None:
    """A git repo with its own identity (dvc exp copies it into the experiment's workspace)."""
    sh("git", "init", "-q", cwd=repo)
    sh("git", "config", "user.name", "egsynth tests", cwd=repo)
    sh("git", "config", "user.email", "tests@egsynth.invalid", cwd=repo)


def git_commit_all(repo: Path) -> None:
    sh("git", "add", "-A", cwd=repo)
    sh("git", "commit", "-q", "-m", "c", cwd=repo)


def write_scenes(root: Path) -> Path:
    scenes = root / "data" / "raw" / "scenes"
    scenes.mkdir(parents=True)
    (scenes / "0.png").write_bytes(b"\x89PNG0")
    (scenes / "1.png").write_bytes(b"\x89PNG1")
    return scenes
