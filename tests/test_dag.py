"""The whole-DAG Prefect flow (pipeline/dag.py) on a tiny git + DVC repo of shell stages."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pipeline.dag import plan, stage_environment

from tests._repo import REPO, run

# Declared downstream first, so that only DVC's graph can put them in order. `parse` fails on its first
# attempt ever (it is a stage the flow retries); `train@ITEM` fails while a file `broken-ITEM` exists.
# The train and parse commands log each attempt; each train command also logs its start, waits (up to 10 s) until
# both have started, then logs its end: "start start end end" when the two ran at once.
TINY_DVC_YAML = {
    "stages": {
        "report": {
            "cmd": "cat model-a.txt model-b.txt > report.txt",
            "deps": ["model-a.txt", "model-b.txt"],
            "outs": ["report.txt"],
        },
        "train": {
            "foreach": ["a", "b"],
            "do": {
                "cmd": "echo ${item} >> train-attempts.txt && echo start >> train-events.txt "
                "&& for i in $(seq 100); do test $(grep -c start train-events.txt) -ge 2 && break; sleep 0.1; done "
                "&& echo end >> train-events.txt && test ! -e broken-${item} "
                "&& cat parsed.txt settings.txt > model-${item}.txt",
                "deps": ["parsed.txt", "settings.txt"],
                "outs": ["model-${item}.txt"],
            },
        },
        "parse": {
            "cmd": "echo attempt >> parse-attempts.txt && test $(wc -l < parse-attempts.txt) -gt 1 "
            "&& cat prepared.txt > parsed.txt",
            "deps": ["prepared.txt"],
            "outs": ["parsed.txt"],
        },
        "prepare": {"cmd": "echo prepared > prepared.txt", "outs": ["prepared.txt"]},
    }
}
UPSTREAM = {
    "prepare": (),
    "parse": ("prepare",),
    "train@a": ("parse",),
    "train@b": ("parse",),
    "report": ("train@a", "train@b"),
}


def tiny_repo(root: Path) -> dict:
    """A git + DVC repo at `root` holding TINY_DVC_YAML; the environment to run pipeline.dag in it."""
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(REPO),
        "PREFECT_HOME": str(root / ".prefect"),
    }
    (root / "dvc.yaml").write_text(yaml.safe_dump(TINY_DVC_YAML, sort_keys=False))
    (root / "settings.txt").write_text("first settings\n")
    run(["git", "init", "-q"], root, env)
    run([sys.executable, "-m", "dvc", "init", "-q"], root, env)
    return env


def dag(root: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.dag", *args], cwd=root, env=env, capture_output=True, text=True
    )


def assert_upstream_first(order: list[str]) -> None:
    for position, stage in enumerate(order):
        assert set(UPSTREAM[stage]) <= set(order[:position]), (stage, order)


def test_plan_is_the_dvc_graph_in_upstream_first_order_with_foreach_items_expanded(tmp_path, monkeypatch):
    tiny_repo(tmp_path)
    monkeypatch.chdir(tmp_path)
    planned = plan()
    assert {stage.name: set(stage.upstream) for stage in planned} == {k: set(v) for k, v in UPSTREAM.items()}
    assert_upstream_first([stage.name for stage in planned])
    assert [stage.name for stage in plan(["train@b"])] == ["prepare", "parse", "train@b"]


def test_stages_run_at_once_keep_their_threads_which_wait_asleep_unless_the_caller_chose(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    alone, together = (stage_environment("http://server/api", jobs) for jobs in (1, 2))
    assert "OMP_WAIT_POLICY" not in alone and together["OMP_WAIT_POLICY"] == "PASSIVE"
    assert alone["OMP_NUM_THREADS"] == together["OMP_NUM_THREADS"] == "3"
    assert together["PREFECT_API_URL"] == "http://server/api"
    assert together["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert stage_environment("http://server/api", 2)["OMP_WAIT_POLICY"] == "ACTIVE"


@pytest.fixture(scope="module")
def first_flow(tmp_path_factory, prefect_api):
    """The flow's first run over the tiny repo, whose `parse` fails once, reporting to the session's Prefect server."""
    root = tmp_path_factory.mktemp("tiny")
    env = tiny_repo(root) | {"PREFECT_API_URL": prefect_api}
    return root, env, dag(root, env)


@pytest.mark.e2e
@pytest.mark.xdist_group("tiny-dag")  # one worker: the second test runs the flow again on the first's repo
def test_the_flow_runs_every_stage_upstream_first_and_retries_a_transiently_failing_one(first_flow):
    root, _, result = first_flow
    assert result.returncode == 0, result.stderr[-4000:]
    ran = re.findall(r"Running stage '([^']+)'", result.stdout)
    assert ran.count("parse") == 2, "parse ran again after its failure"
    assert_upstream_first(list(dict.fromkeys(ran)))
    assert set(ran) == set(UPSTREAM)
    assert (root / "train-events.txt").read_text().split() == ["start", "start", "end", "end"], "not at once"
    assert all(f"Task run '{stage}' - DVC ran it" in result.stderr for stage in UPSTREAM)
    assert (root / "report.txt").read_text() == "prepared\nfirst settings\n" * 2
    assert (root / "parse-attempts.txt").read_text().count("attempt") == 2


@pytest.mark.e2e
@pytest.mark.xdist_group("tiny-dag")
def test_a_failing_stage_stops_its_downstream_stages_and_exits_naming_its_log(first_flow):
    root, env, _ = first_flow
    (root / "settings.txt").write_text("second settings\n")
    (root / "broken-a").touch()
    result = dag(root, env)
    log = root / ".prefect" / "stage-logs" / "train@a.log"
    assert result.returncode != 0
    (summary,) = [line for line in result.stderr.splitlines() if line.startswith("dag: ")]
    assert re.fullmatch(rf"dag: stage 'train@a' failed \(exit \d+\); its log: {re.escape(str(log))}", summary)
    assert "Traceback" not in result.stderr and "NoneType: None" not in result.stderr
    assert "failed to reproduce 'train@a'" in log.read_text()
    assert sorted((root / "train-attempts.txt").read_text().split()) == ["a", "a", "b", "b"], "no retry for train"
    assert (root / "model-b.txt").read_text() == "prepared\nsecond settings\n", "an independent stage still runs"
    assert "Running stage 'report'" not in result.stdout
    assert (root / "report.txt").read_text() == "prepared\nfirst settings\n" * 2
    assert "not run, an upstream stage failed: report" in result.stderr
    assert all(f"Task run '{stage}' - DVC skipped it: up to date" in result.stderr for stage in ("prepare", "parse"))
