"""`egsynth lineage`, `runs` and `compare` on a tiny DVC + git repo whose stages ran under `writer.stage_run`."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from egsynth import lineage, run_history
from egsynth.cli import app
from egsynth.lineage import LineageError
from egsynth.provenance import dvc_md5
from egsynth.tracking.store import EXPERIMENT_ENV
from egsynth.tracking.writer import StageRun, stage_run

pytestmark = pytest.mark.filterwarnings("ignore:_NoneStep.value:DeprecationWarning")  # inside dvc 3.67's graph code
runner = CliRunner()

# scenes -> filter -> train@a, train@b (a foreach stage); `notes` stands apart and never ran under MLflow
PARAMS = {"scenes": {"seed": 0}, "filter": {"keep": 1}, "train": {"lr": 0.1}, "items": ["a", "b"]}
DVC_YAML = {
    "stages": {
        "scenes": {"cmd": "true", "deps": ["make.py"], "params": ["scenes.seed"], "outs": ["data/scenes"]},
        "filter": {
            "cmd": "true",
            "deps": ["make.py", "data/scenes"],
            "params": ["filter.keep"],
            "outs": ["data/kept.txt"],
            "metrics": [{"metrics/filter.json": {"cache": False}}],
        },
        "train": {
            "foreach": "${items}",
            "do": {
                "cmd": "true",
                "deps": ["make.py", "data/kept.txt"],
                "params": ["train.lr"],
                "outs": ["models/${item}.pt"],
            },
        },
        "notes": {"cmd": "true", "deps": ["make.py"], "outs": ["notes.txt"]},
    }
}


def sh(*args: str, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DVC_", "GIT_"))}
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def git_repo(root: Path) -> None:
    """A git + DVC repo at `root` with its own identity."""
    from dvc.repo import Repo

    root.mkdir(parents=True)
    sh("git", "init", "-q", cwd=root)
    sh("git", "config", "user.name", "egsynth tests", cwd=root)
    sh("git", "config", "user.email", "tests@egsynth.invalid", cwd=root)
    Repo.init(os.fspath(root)).close()


def commit_all(root: Path, message: str = "c") -> None:
    sh("git", "add", "-A", cwd=root)
    sh("git", "commit", "-q", "-m", message, cwd=root)


def run_stage(root: Path, name: str, section: str, deps: list[str], outs: list[str], files: dict, metrics=None) -> str:
    """One stage execution as pipeline/_stage.py runs it: an MLflow run around writing `files` (path -> text)."""
    params = {section: PARAMS[section]}
    deps, outs = [Path(p) for p in deps], [Path(p) for p in outs]
    with stage_run(name, repo_root=root, stage_params=params, all_params=PARAMS, deps=deps, outs=outs) as run:
        for path, text in files.items():
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_text(text)
        run.log_metrics(metrics or {})
    return run.run_id


@pytest.fixture(scope="module")
def environment(tmp_path_factory):
    """This module's MLflow store and experiment; no DVC experiment or torchrun variables."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}")
        patch.setenv(EXPERIMENT_ENV, "test_lineage")
        for name in ("DVC_EXP_NAME", "DVC_EXP_BASELINE_REV", "RANK"):
            patch.delenv(name, raising=False)
        yield


@pytest.fixture(scope="module")
def built(environment, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """The pipeline's stages run under MLflow, then `dvc commit` writes dvc.lock: (repo, stage -> run id)."""
    from dvc.repo import Repo

    root = tmp_path_factory.mktemp("built") / "repo"
    git_repo(root)
    (root / "make.py").write_text("# the stages' code\n")
    (root / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    (root / "dvc.yaml").write_text(yaml.safe_dump(DVC_YAML, sort_keys=False))
    commit_all(root)
    scenes = {"data/scenes/0.txt": "sky", "data/scenes/1.txt": "sea"}
    runs = {"scenes": run_stage(root, "scenes", "scenes", ["make.py"], ["data/scenes"], scenes)}
    filtered = {"data/kept.txt": "sky", "metrics/filter.json": '{"kept": 1}'}
    outs = ["data/kept.txt", "metrics/filter.json"]
    runs["filter"] = run_stage(root, "filter", "filter", ["make.py", "data/scenes"], outs, filtered, {"kept": 1})
    for item in ("a", "b"):
        weights = {f"models/{item}.pt": f"weights {item}"}
        deps = ["make.py", "data/kept.txt"]
        runs[f"train@{item}"] = run_stage(root, f"train@{item}", "train", deps, [f"models/{item}.pt"], weights)
    (root / "notes.txt").write_text("written outside any stage run")
    with pytest.MonkeyPatch.context() as patch, Repo(os.fspath(root)) as repo:
        patch.chdir(root)  # DVC collects stages relative to the working directory
        repo.commit(force=True)
    return root, runs


@pytest.fixture
def repo(built, tmp_path, monkeypatch) -> tuple[Path, dict[str, str]]:
    """A fresh copy of the built repo as the working directory; the runs' relative paths still match it."""
    root, runs = built
    copy = tmp_path / "repo"
    shutil.copytree(root, copy, symlinks=True)
    monkeypatch.chdir(copy)
    return copy, runs


def one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith("error: ") and "Traceback" not in result.output
    return line


# ----------------------------------------------------------------------------
# lineage


def test_lineage_lists_the_chain_in_dag_order_back_to_the_first_stage_with_matching_digests(repo):
    root, runs = repo
    traced = lineage.trace(Path("models/a.pt"))

    assert traced.path == traced.out == "models/a.pt"
    assert [stage.stage for stage in traced.stages] == ["train@a", "filter", "scenes"]
    assert [stage.upstream for stage in traced.stages] == [("filter",), ("scenes",), ()]
    assert [stage.run.run_id for stage in traced.stages] == [runs["train@a"], runs["filter"], runs["scenes"]]
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    for stage in traced.stages:
        checks = (*stage.deps, *stage.outs)
        locked = lock[stage.stage]["deps"] + lock[stage.stage]["outs"]
        assert {c.path: c.recorded for c in checks} == {entry["path"]: entry["md5"] for entry in locked}
        assert all(c.on_disk == c.recorded == c.in_run == dvc_md5(root / c.path) for c in checks)
    assert traced.stages[0].run.params == {"train.lr": "0.1"}
    assert traced.problems == ()


def test_a_file_inside_a_directory_out_is_traced_from_that_out(repo):
    traced = lineage.trace(Path("data/scenes/1.txt"))
    assert (traced.path, traced.out) == ("data/scenes/1.txt", "data/scenes")
    assert [stage.stage for stage in traced.stages] == ["scenes"]
    assert traced.problems == ()


def test_modifying_one_output_flags_exactly_that_file_and_the_cli_exits_non_zero(repo):
    root, _ = repo
    recorded = dvc_md5(root / "data/kept.txt")
    (root / "data/kept.txt").write_text("sky, edited")
    on_disk = dvc_md5(root / "data/kept.txt")

    expected = f"data/kept.txt: MODIFIED: recorded md5 {recorded}, on disk {on_disk}"
    assert lineage.trace(Path("models/b.pt")).problems == (expected,)
    result = runner.invoke(app, ["lineage", "models/b.pt"])
    assert result.exit_code == 1
    assert expected in result.output and "FLAGGED (1)" in result.output


def test_a_removed_dep_is_flagged_missing(repo):
    root, _ = repo
    recorded = dvc_md5(root / "make.py")
    (root / "make.py").unlink()
    assert lineage.trace(Path("data/scenes")).problems == (f"make.py: MISSING: recorded md5 {recorded}, not on disk",)


def test_a_dep_committed_to_dvc_lock_after_the_run_is_flagged_as_differing_from_the_run(repo):
    """`dvc commit` after editing code: dvc.lock and the disk agree, the MLflow run saw other code."""
    from dvc.repo import Repo

    root, runs = repo
    ran_with = dvc_md5(root / "make.py")
    (root / "make.py").write_text("# edited after the run\n")
    with Repo(os.fspath(root)) as dvc_repo:
        dvc_repo.commit("scenes", force=True)
    locked = dvc_md5(root / "make.py")

    (stage,) = lineage.trace(Path("data/scenes")).stages
    assert stage.run.run_id == runs["scenes"]  # matched by its outs, which did not change
    assert stage.problems == (
        f"make.py: RUN DIFFERS: dvc.lock has md5 {locked}, scenes's MLflow run {runs['scenes']} recorded {ran_with}",
    )


def test_a_stage_with_no_matching_mlflow_run_is_flagged(repo):
    traced = lineage.trace(Path("notes.txt"))
    assert traced.stages[0].run is None
    assert traced.problems == ("notes: NO MLFLOW RUN recorded the outs with the md5s in dvc.lock",)
    assert runner.invoke(app, ["lineage", "notes.txt"]).exit_code == 1


def test_lineage_json_holds_each_stage_its_run_and_its_checks(repo):
    _, runs = repo
    result = runner.invoke(app, ["lineage", "--json", "models/a.pt"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [(s["stage"], s["run"]["run_id"]) for s in data["stages"]] == [
        ("train@a", runs["train@a"]),
        ("filter", runs["filter"]),
        ("scenes", runs["scenes"]),
    ]
    assert data["problems"] == [] and data["stages"][1]["outs"][1]["path"] == "metrics/filter.json"


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("make.py", "make.py: no stage in dvc.yaml produces it"),
        ("models/c.pt", "models/c.pt: does not exist"),
    ],
)
def test_a_path_no_stage_produces_or_that_does_not_exist_is_one_line(repo, path, problem):
    assert problem in one_line_error(runner.invoke(app, ["lineage", path]))


def test_no_mlflow_store_is_one_line_and_creates_none(repo, monkeypatch, tmp_path):
    missing = tmp_path / "elsewhere" / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{missing}")
    for command in (["lineage", "models/a.pt"], ["runs"], ["compare", "0" * 32, "1" * 32]):
        assert f"{missing}: no MLflow store" in one_line_error(runner.invoke(app, command))
    assert not missing.exists()


def test_a_deleted_output_is_reported_missing_with_exit_1(repo):
    root, _ = repo
    (root / "models" / "a.pt").unlink()
    result = runner.invoke(app, ["lineage", "models/a.pt"])
    assert result.exit_code == 1, result.output
    assert "models/a.pt: MISSING: recorded md5" in result.output and "Traceback" not in result.output


def sqlite_without_mlflow(path: Path) -> None:
    import sqlite3

    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE notes (text)")
    db.close()


STORE_DAMAGE = {
    "empty": lambda path: path.write_bytes(b""),
    "garbage": lambda path: path.write_bytes(bytes(range(256)) * 64),
    "truncated": lambda path: path.write_bytes(path.read_bytes()[: path.stat().st_size // 2]),
    "foreign": lambda path: (path.unlink(), sqlite_without_mlflow(path)),
    "corrupt page": lambda path: path.write_bytes(path.read_bytes()[:4096] + b"\xee" * (path.stat().st_size - 4096)),
}


@pytest.mark.parametrize("damage", sorted(STORE_DAMAGE))
def test_a_broken_store_is_one_line_for_every_audit_command_and_stays_byte_identical(
    repo, monkeypatch, tmp_path, damage
):
    store = tmp_path / "store" / "mlflow.db"
    store.parent.mkdir()
    shutil.copyfile(os.environ["MLFLOW_TRACKING_URI"].removeprefix("sqlite:///"), store)
    STORE_DAMAGE[damage](store)
    before = store.read_bytes()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    for command in (["lineage", "models/a.pt"], ["runs"], ["compare", "0" * 32, "1" * 32]):
        assert str(store) in one_line_error(runner.invoke(app, command)), command
    assert store.read_bytes() == before
    assert sorted(p.name for p in store.parent.iterdir()) == ["mlflow.db"], "no journal or other file was made"


# ----------------------------------------------------------------------------
# runs and compare


def test_runs_lists_the_pipeline_with_every_stage_run_and_its_key_metrics(repo):
    _, runs = repo
    (pipeline,) = run_history.recent_runs(5)
    assert [stage.run_id for stage in pipeline.stages] == [runs[s] for s in ("train@b", "train@a", "filter", "scenes")]
    result = runner.invoke(app, ["runs", "--metric", "kept"])
    assert result.exit_code == 0, result.output
    assert pipeline.fingerprint in result.output and "kept=1" in result.output
    assert result.output.index(runs["train@b"]) < result.output.index(runs["scenes"])  # newest first


@pytest.fixture
def two_runs(environment, tmp_path, monkeypatch):
    """Two stage runs of `evaluate` under two pipeline configurations, in a repo of their own."""
    root = tmp_path / "repo"
    (root / ".dvc").mkdir(parents=True)
    monkeypatch.chdir(root)
    monkeypatch.setenv(EXPERIMENT_ENV, "test_lineage_compare")

    def evaluate(params: dict, metrics: dict) -> StageRun:
        with stage_run("evaluate", repo_root=root, stage_params=params, all_params=params, deps=[], outs=[]) as run:
            run.log_metrics(metrics)
        return run

    first = evaluate({"evaluate": {"batch": 4, "seed": 0}}, {"swap": {"psnr": 15.0, "ssim": 0.5}})
    second = evaluate({"evaluate": {"batch": 8, "seed": 0}}, {"swap": {"psnr": 16.0, "ssim": 0.5, "fid": 30.0}})
    return first, second


def test_compare_of_two_stage_runs_lists_exactly_the_differing_params_and_metrics(two_runs):
    first, second = two_runs
    comparison = run_history.compare(first.run_id, second.run_id)
    assert comparison.params == (run_history.Difference("evaluate.batch", "4", "8"),)
    assert comparison.metrics == (
        run_history.Difference("swap.fid", None, 30.0),
        run_history.Difference("swap.psnr", 15.0, 16.0),
    )
    result = runner.invoke(app, ["compare", first.run_id, second.run_id])
    assert result.exit_code == 0, result.output
    assert "swap.psnr" in result.output and "swap.ssim" not in result.output and "evaluate.seed" not in result.output


def test_compare_of_two_pipeline_fingerprints_diffs_all_params_and_each_stages_metrics(two_runs):
    first, second = two_runs
    comparison = run_history.compare(first.fingerprint, second.fingerprint)
    assert first.parent_run_id in comparison.a and second.parent_run_id in comparison.b
    assert [d.key for d in comparison.params] == ["evaluate.batch"]
    assert [d.key for d in comparison.metrics] == ["evaluate/swap.fid", "evaluate/swap.psnr"]
    assert run_history.compare(first.fingerprint, first.parent_run_id).params == ()
    result = runner.invoke(app, ["compare", first.fingerprint, first.fingerprint])
    assert result.exit_code == 0 and "no param or metric differs" in result.output


def test_compare_of_a_run_and_an_unknown_name_is_one_line(two_runs):
    first, _ = two_runs
    line = one_line_error(runner.invoke(app, ["compare", first.run_id, "no-such-thing"]))
    assert "no-such-thing: not an MLflow run id or pipeline fingerprint" in line


def test_compare_of_git_revisions_and_dvc_experiments_lists_exactly_what_changed(environment, tmp_path, monkeypatch):
    from dvc.repo import Repo

    root = tmp_path / "repo"
    git_repo(root)
    (root / "dvc.yaml").write_text(yaml.safe_dump({"metrics": ["metrics.json"]}))

    def state(lr: float, seed: int, psnr: float, ssim: float) -> None:
        (root / "params.yaml").write_text(yaml.safe_dump({"train": {"lr": lr, "seed": seed}}))
        (root / "metrics.json").write_text(json.dumps({"psnr": psnr, "ssim": ssim}))

    state(lr=0.1, seed=0, psnr=15.0, ssim=0.5)
    commit_all(root)
    sh("git", "tag", "baseline", cwd=root)
    state(lr=0.2, seed=0, psnr=16.0, ssim=0.5)
    commit_all(root)
    state(lr=0.3, seed=1, psnr=16.0, ssim=0.5)
    with Repo(os.fspath(root)) as dvc_repo:
        dvc_repo.experiments.save(name="lr-up")
    monkeypatch.chdir(root)

    comparison = run_history.compare("baseline", "HEAD")
    assert comparison.params == (run_history.Difference("params.yaml:train.lr", 0.1, 0.2),)
    assert comparison.metrics == (run_history.Difference("metrics.json:psnr", 15.0, 16.0),)
    experiment = run_history.compare("HEAD", "lr-up")
    assert experiment.params == (
        run_history.Difference("params.yaml:train.lr", 0.2, 0.3),
        run_history.Difference("params.yaml:train.seed", 0, 1),
    )
    assert experiment.metrics == ()
    with pytest.raises(LineageError, match="nope: not an MLflow run id or pipeline fingerprint, nor a DVC"):
        run_history.compare("HEAD", "nope")
