"""End to end: `dvc repro` of configs/smoke.yaml in a temporary copy of the repo."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from egsynth import tracking

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.e2e


def run(command: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


@pytest.fixture(scope="module")
def smoke_repo(tmp_path_factory):
    """A git + DVC copy of this repo's source (no data, no caches) with the smoke preset as params."""
    root = tmp_path_factory.mktemp("repo")
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    for name in filter(None, listed.split("\0")):
        if (REPO / name).is_file():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, root / name)
    (root / "dvc.lock").unlink(missing_ok=True)
    shutil.copy(REPO / "configs" / "smoke.yaml", root / "params.yaml")
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "PREFECT_HOME": str(root / ".prefect"),
    }
    git = ["git", "-c", "user.name=egsynth-test", "-c", "user.email=test@egsynth"]
    run([*git, "init", "-q"], root, env)
    run([*git, "add", "-A"], root, env)
    run([*git, "commit", "-q", "-m", "smoke"], root, env)
    first = run([sys.executable, "-m", "dvc", "repro"], root, env)
    return root, env, first


def test_repro_runs_scenes_and_filter(smoke_repo):
    root, _, first = smoke_repo
    assert "Running stage 'scenes'" in first.stdout and "Running stage 'filter'" in first.stdout
    scenes = pd.read_parquet(root / "data" / "interim" / "scenes.parquet")
    report = yaml.safe_load((root / "reports" / "metrics" / "filter.json").read_text())
    assert len(scenes) == report["kept"] > 0
    assert report["images"] == 32 and sum(report["removed"].values()) + report["kept"] == 32
    assert set(scenes["split"]) == {"train", "test"}


def test_every_out_md5_in_dvc_lock_is_on_an_mlflow_run_of_that_stage(smoke_repo):
    root, env, _ = smoke_repo
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    os.environ["MLFLOW_TRACKING_URI"] = env["MLFLOW_TRACKING_URI"]
    try:
        parents = set()
        for stage, entry in lock.items():
            for out in entry["outs"]:
                (record,) = tracking.find_stage_runs(root, out=out["path"], md5=out["md5"])
                assert record.stage == stage and record.status == "FINISHED"
                assert record.deps == {dep["path"]: dep["md5"] for dep in entry["deps"]}
                parents.add(record.fingerprint)
        assert len(parents) == 1, "both stages of one pipeline run share one fingerprint (parent run)"
    finally:
        del os.environ["MLFLOW_TRACKING_URI"]


def test_second_repro_runs_nothing(smoke_repo):
    root, env, _ = smoke_repo
    again = run([sys.executable, "-m", "dvc", "repro"], root, env)
    assert "Running stage" not in again.stdout
    assert "up to date" in again.stdout.lower()
