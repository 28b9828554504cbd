import importlib.metadata
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from egsynth.provenance import dvc_md5, find_repo_root
from egsynth.tracking import store
from egsynth.tracking.queries import find_stage_runs
from egsynth.tracking.store import dep_tag, out_tag, tracking_uri, version_tag
from egsynth.tracking.writer import StageRun, stage_run
from tests._repo import stage_runs_of_experiment
from tests._workspace import EXP_COPIES, git_commit_all, git_init, sh, write_scenes

# ----------------------------------------------------------------------------
# helpers

PARAMS = {"filter": {"min_outdoor": 0.5, "seed": 0}, "train": {"lr": 2e-4, "variants": ["full", "gap"]}}


@pytest.fixture(scope="module")
def store_uri(tmp_path_factory) -> str:
    """One SQLite store for the module: creating it runs all migrations (about a second)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture
def repo(tmp_path, monkeypatch, store_uri, request) -> Path:
    """An empty DVC workspace as cwd, its own experiment in the shared store, no DVC/torchrun env."""
    root = tmp_path / "repo"
    (root / ".dvc").mkdir(parents=True)
    monkeypatch.chdir(root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store_uri)
    monkeypatch.setenv(store.EXPERIMENT_ENV, request.node.name)
    for name in ("DVC_EXP_NAME", "DVC_EXP_BASELINE_REV", "RANK"):
        monkeypatch.delenv(name, raising=False)
    return root


def client():
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=os.environ["MLFLOW_TRACKING_URI"])


def run_stage(root: Path, name: str, all_params: dict, **kwargs) -> StageRun:
    with stage_run(name, repo_root=root, stage_params={}, all_params=all_params, deps=[], outs=[], **kwargs) as r:
        pass
    return r


# ----------------------------------------------------------------------------
# the store and the tag keys


def test_tracking_uri_is_the_env_value_when_set_else_an_absolute_sqlite_file(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking:5000")
    assert tracking_uri(tmp_path) == "http://tracking:5000"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.chdir(tmp_path)
    assert tracking_uri(Path(".")) == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert tracking_uri(Path(".")).startswith("sqlite:////")


def test_tag_keys_are_relative_posix_paths_and_illegal_ones_are_refused(tmp_path):
    assert dep_tag("data/raw/scenes") == "egsynth.dep/data/raw/scenes"
    assert out_tag(tmp_path / "models" / "full" / "generator.pt", tmp_path) == "egsynth.out/models/full/generator.pt"
    assert out_tag(Path("models/x.pt"), tmp_path) == "egsynth.out/models/x.pt"
    for bad in ("data/a+b.parquet", "data/../x", "/abs/x"):
        with pytest.raises(ValueError):
            dep_tag(bad)
    with pytest.raises(ValueError, match="not inside"):
        dep_tag(tmp_path.parent / "elsewhere", tmp_path)


# ----------------------------------------------------------------------------
# stage runs


def test_stage_run_records_stage_params_and_the_dvc_md5_of_deps_and_outs(repo, monkeypatch):
    monkeypatch.setenv("DVC_EXP_NAME", "hazy-fern")
    scenes = write_scenes(repo)
    table = Path("data/interim/scenes.parquet")
    report = Path("reports/filter.json")
    with stage_run(
        "filter",
        repo_root=repo,
        stage_params={"filter": PARAMS["filter"]},
        all_params=PARAMS,
        deps=[Path("data/raw/scenes")],
        outs=[table, report],
        tables=[table],
    ) as run:
        assert not table.exists()  # outs are hashed on exit, after the stage wrote them
        table.parent.mkdir(parents=True)
        pd.DataFrame({"image": ["0.png", "1.png"], "split": ["train", "test"]}).to_parquet(table)
        report.parent.mkdir()
        report.write_text('{"kept": 2}')
        run.log_metrics({"kept": 2})

    got = client().get_run(run.run_id)
    tags = got.data.tags
    assert got.info.status == "FINISHED"
    assert tags[store.STAGE] == "filter" and tags["egsynth.dvc_exp_name"] == "hazy-fern"
    assert tags[store.GIT_COMMIT] == "none" and tags[store.GIT_DIRTY] == "true"
    assert tags[dep_tag("data/raw/scenes")] == dvc_md5(scenes)
    assert tags[out_tag(table)] == dvc_md5(repo / table)
    assert tags[out_tag(report)] == dvc_md5(repo / report)
    assert got.data.params == {"filter.min_outdoor": "0.5", "filter.seed": "0"}
    assert got.data.metrics == {"kept": 2.0}

    (dataset_input,) = got.inputs.dataset_inputs
    assert dataset_input.dataset.name == "data/interim/scenes.parquet"
    assert dataset_input.dataset.digest == dvc_md5(repo / table)
    lineage = json.loads(Path(client().download_artifacts(run.run_id, "lineage.json")).read_text())
    assert lineage["deps"] == {"data/raw/scenes": dvc_md5(scenes)} == run.deps
    assert lineage["outs"] == {str(table): dvc_md5(repo / table), str(report): dvc_md5(repo / report)}
    assert lineage["params"] == {"filter": PARAMS["filter"]}
    artifacts = {f.path for f in client().list_artifacts(run.run_id)}
    assert artifacts == {"lineage.json"}  # pointers and digests only, never the data


def test_stage_run_records_the_installed_versions_of_the_packages_that_change_numbers(repo):
    with stage_run("parse", repo_root=repo, stage_params={}, all_params=PARAMS, deps=[], outs=[]) as run:
        pass
    tags = client().get_run(run.run_id).data.tags
    for package in ("torch", "torchvision", "dvc", "mlflow", "prefect", "kornia", "torchmetrics", "numpy", "pandas"):
        assert tags[version_tag(package)] == importlib.metadata.version(package), package
    assert tags[version_tag("python")] == platform.python_version()


def test_find_stage_runs_by_out_digest_returns_the_run_that_wrote_those_bytes(repo):
    def train(weights: bytes) -> StageRun:
        (repo / "models").mkdir(exist_ok=True)
        deps, outs = [Path("data/raw/scenes")], [Path("models/g.pt")]
        with stage_run("train", repo_root=repo, stage_params={}, all_params=PARAMS, deps=deps, outs=outs) as run:
            (repo / "models" / "g.pt").write_bytes(weights)
        return run

    scenes = write_scenes(repo)
    old, new = train(b"old"), train(b"new")
    (record,) = find_stage_runs(repo, out="models/g.pt", md5=dvc_md5(repo / "models" / "g.pt"))
    assert record.run_id == new.run_id and record.stage == "train" and record.status == "FINISHED"
    assert record.deps == {"data/raw/scenes": dvc_md5(scenes)}
    assert [r.run_id for r in find_stage_runs(repo, out="models/g.pt")] == [new.run_id, old.run_id]
    assert find_stage_runs(repo, out="models/other.pt") == []


def test_runs_with_the_same_commit_and_params_share_one_parent(repo):
    first = run_stage(repo, "scenes", PARAMS)
    second = run_stage(repo, "filter", {"train": PARAMS["train"], "filter": PARAMS["filter"]})
    other = run_stage(repo, "filter", {**PARAMS, "filter": {"min_outdoor": 0.9, "seed": 0}})
    assert first.parent_run_id == second.parent_run_id != other.parent_run_id
    for stage in (first, second, other):
        assert client().get_run(stage.run_id).data.tags["mlflow.parentRunId"] == stage.parent_run_id
    parent = client().get_run(first.parent_run_id)
    assert parent.data.tags[store.FINGERPRINT] == first.fingerprint
    assert parent.data.params["filter.min_outdoor"] == "0.5"


def test_an_out_path_mlflow_cannot_key_is_refused_before_the_stage_runs(repo):
    with pytest.raises(ValueError, match="a\\+b.pt"):
        with stage_run("train", repo_root=repo, stage_params={}, all_params=PARAMS, deps=[], outs=[Path("a+b.pt")]):
            pytest.fail("the stage body ran")


def test_failing_stage_marks_its_run_failed_and_reraises(repo):
    with pytest.raises(RuntimeError, match="boom"):
        with stage_run("parse", repo_root=repo, stage_params={}, all_params=PARAMS, deps=[], outs=[]) as run:
            raise RuntimeError("boom")
    assert client().get_run(run.run_id).info.status == "FAILED"


def test_missing_out_fails_the_run_and_names_the_path(repo):
    outs = [Path("models/never.pt")]
    with pytest.raises(FileNotFoundError, match="models/never.pt"):
        with stage_run("train", repo_root=repo, stage_params={}, all_params=PARAMS, deps=[], outs=outs) as run:
            pass
    assert client().get_run(run.run_id).info.status == "FAILED"


def test_only_rank_zero_records_a_run(repo, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    with stage_run("train", repo_root=repo, stage_params={}, all_params=PARAMS, deps=[Path("absent")], outs=[]) as run:
        run.log_metrics({"loss": 1.0})
    assert run.run_id is None and run.deps == {}


@pytest.mark.parametrize("given_root", ["copy", "original"])
def test_stage_in_a_dvc_exp_temp_copy_logs_to_the_original_store_with_paths_relative_to_the_copy(
    repo, monkeypatch, given_root
):
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    copy = repo / EXP_COPIES[1]
    (copy / ".dvc").mkdir(parents=True)
    write_scenes(copy)
    monkeypatch.chdir(copy)
    deps = [Path("data/raw/scenes")]
    root = Path.cwd() if given_root == "copy" else find_repo_root()
    with stage_run("filter", repo_root=root, stage_params={}, all_params=PARAMS, deps=deps, outs=[]) as run:
        pass
    assert (repo / "mlflow.db").is_file() and not (copy / "mlflow.db").exists()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri(repo))
    tags = client().get_run(run.run_id).data.tags
    assert tags[dep_tag("data/raw/scenes")] == dvc_md5(copy / "data" / "raw" / "scenes")


STAGE_SCRIPT = """\
import sys
from pathlib import Path
import yaml
from egsynth.tracking.writer import stage_run

name = sys.argv[1]
params = yaml.safe_load(open("params.yaml"))
deps, outs = [Path("stage.py")], [Path(f"out-{name}")]
stage_params = {name: params[name]}
with stage_run(name, repo_root=Path.cwd(), stage_params=stage_params, all_params=params, deps=deps, outs=outs):
    outs[0].mkdir()
    (outs[0] / "v.txt").write_text(str(params[name]["v"]))
"""


def tracked_repo(repo: Path, stages: list[str], monkeypatch) -> Path:
    """A committed git + DVC repo at `repo` whose stages each record an MLflow run as the pipeline's stages do
    (`stage_run`, the default store of the repo): stage NAME reads param NAME.v (1) and writes out-NAME/."""
    for name in ("MLFLOW_TRACKING_URI", store.EXPERIMENT_ENV):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")  # dvc's queue worker
    repo.mkdir()
    git_init(repo)
    sh(sys.executable, "-m", "dvc", "init", "-q", cwd=repo)
    (repo / "stage.py").write_text(STAGE_SCRIPT)
    (repo / "params.yaml").write_text(yaml.safe_dump({name: {"v": 1} for name in stages}))
    dvc_yaml = {
        name: {"cmd": f"{sys.executable} stage.py {name}", "deps": ["stage.py"], "params": [f"{name}.v"]}
        | {"outs": [f"out-{name}"]}
        for name in stages
    }
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": dvc_yaml}))
    (repo / ".gitignore").write_text("mlflow.db\nmlartifacts/\n")
    git_commit_all(repo)
    return repo


@pytest.mark.e2e  # a real `dvc exp run`
def test_dvc_exp_run_temp_records_the_md5s_of_the_experiments_dvc_lock_in_the_original_store(tmp_path, monkeypatch):
    repo = tracked_repo(tmp_path / "repo", ["make"], monkeypatch)
    sh(sys.executable, "-m", "dvc", "exp", "run", "--temp", "-S", "make.v=2", "-n", "vtwo", cwd=repo)

    refs = sh("git", "for-each-ref", "--format=%(refname)", "refs/exps", cwd=repo).split()
    (ref,) = [ref for ref in refs if ref.endswith("/vtwo")]
    lock = yaml.safe_load(sh("git", "show", f"{ref}:dvc.lock", cwd=repo))["stages"]["make"]
    (record,) = find_stage_runs(repo, out="out-make")  # the default store of the original repo
    assert record.outs == {"out-make": lock["outs"][0]["md5"]}
    assert record.deps == {"stage.py": lock["deps"][0]["md5"]}
    assert record.params == {"make.v": "2"} and record.dirty


@pytest.mark.e2e  # a real `dvc queue start`
@pytest.mark.long(seconds=39)
def test_a_queued_experiment_runs_in_its_own_copy_and_shows_up_in_both_views(tmp_path, monkeypatch):
    """`dvc exp run --queue` + `dvc queue start` on a committed baseline: DVC runs it in a copy under
    .dvc/tmp/exps (the workspace keeps its outputs), re-running only the stage its param reaches; its params
    reach `dvc exp show` and `dvc exp diff`, its stage run reaches MLflow under the experiment's name and
    baseline revision."""
    repo = tracked_repo(tmp_path / "repo", ["make", "other"], monkeypatch)
    dvc = [sys.executable, "-m", "dvc"]
    sh(*dvc, "repro", "-q", cwd=repo)
    git_commit_all(repo)
    baseline = sh("git", "rev-parse", "HEAD", cwd=repo).strip()
    sh(*dvc, "exp", "run", "--queue", "-n", "queued", "-S", "make.v=2", cwd=repo)
    sh(*dvc, "queue", "start", cwd=repo)
    deadline = time.monotonic() + 300
    while re.search(r"\b(Queued|Running)\b", status := sh(*dvc, "queue", "status", cwd=repo)):
        assert time.monotonic() < deadline, f"queued experiment still running after 5 minutes:\n{status}"
        time.sleep(3)  # each poll is a DVC process (about a second of CPU, taken from the smoke build beside it)
    assert re.search(r"queued.*Success", status), status

    assert (repo / "out-make" / "v.txt").read_text() == "1", "the experiment ran in a copy, not the workspace"
    (row,) = [line for line in sh(*dvc, "exp", "show", "--csv", cwd=repo).splitlines() if "queued" in line]
    assert "2" in row.split(",")
    compared = json.loads(sh(*dvc, "exp", "diff", "--json", "HEAD", "queued", cwd=repo))
    ((key, changed),) = compared["params"]["params.yaml"].items()
    assert key == "make.v" and (changed["old"], changed["new"]) == (1, 2)
    tags = stage_runs_of_experiment(repo, {"MLFLOW_TRACKING_URI": tracking_uri(repo)}, "queued")
    assert set(tags) == {"make"}, "the stage the param reaches, and only it, ran in the experiment"
    assert tags["make"]["egsynth.dvc_exp_baseline_rev"] == baseline
