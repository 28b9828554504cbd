"""End to end: `egsynth lineage`, `runs` and `compare` on the smoke pipeline's repo and its MLflow store."""

import json
import subprocess

import pytest
import yaml

from egsynth.provenance import dvc_md5
from tests._repo import egsynth_here

pytestmark = pytest.mark.e2e

GENERATOR = "models/full/generator.pt"
CHAIN = ["train@full", "pretrain", "manifest", "parse", "parser", "filter", "scenes"]  # producer first


def egsynth(smoke_repo, *args: str) -> subprocess.CompletedProcess:
    """`egsynth ARGS` in the smoke repo with its MLflow store (run in this process; the README's test runs the
    installed command)."""
    root, env, _ = smoke_repo
    return egsynth_here(root, env, *args)


def traced(smoke_repo, path: str) -> dict:
    done = egsynth(smoke_repo, "lineage", "--json", path)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr
    return json.loads(done.stdout)


def test_lineage_of_the_generator_lists_every_upstream_stage_with_its_run_and_matching_digests(smoke_repo):
    root, _, _ = smoke_repo
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    chain = traced(smoke_repo, GENERATOR)

    assert [stage["stage"] for stage in chain["stages"]] == CHAIN
    for stage in chain["stages"]:
        locked = {entry["path"]: entry["md5"] for entry in lock[stage["stage"]]["outs"]}
        run = stage["run"]
        assert run["stage"] == stage["stage"] and run["status"] == "FINISHED" and run["outs"] == locked
        for check in stage["deps"] + stage["outs"]:
            assert check["recorded"] == check["on_disk"] == check["in_run"], check
    assert chain["problems"] == []

    text = egsynth(smoke_repo, "lineage", GENERATOR)
    assert text.returncode == 0 and "ok: all" in text.stdout
    assert all(stage["run"]["run_id"] in text.stdout for stage in chain["stages"])


def test_a_modified_file_in_the_chain_is_flagged_and_the_exit_is_non_zero(smoke_copy):
    root, env = smoke_copy
    pretrained = root / "models" / "pretrain.pt"
    original = pretrained.read_bytes()
    recorded = dvc_md5(pretrained)
    pretrained.unlink()  # a new file: the old one may share its bytes with DVC's cache
    pretrained.write_bytes(original + b"\0")
    done = egsynth((root, env, None), "lineage", GENERATOR)
    assert done.returncode == 1
    flagged = f"models/pretrain.pt: MODIFIED: recorded md5 {recorded}, on disk {dvc_md5(pretrained)}"
    assert flagged in done.stdout and "FLAGGED (1)" in done.stdout


def test_runs_lists_the_pipeline_run_and_the_evaluation_psnr(smoke_repo):
    evaluation = traced(smoke_repo, "reports/metrics/full.json")["stages"][0]["run"]
    done = egsynth(smoke_repo, "runs", "--limit", "10")
    assert done.returncode == 0, done.stderr
    assert f"pipeline {evaluation['fingerprint']}" in done.stdout and evaluation["run_id"] in done.stdout
    assert "duplicating.psnr=" in done.stdout


def test_compare_of_the_two_evaluation_runs_lists_the_metrics_that_differ_and_no_param(smoke_repo):
    root, _, _ = smoke_repo
    full, gap = (traced(smoke_repo, f"reports/metrics/{v}.json")["stages"][0]["run"] for v in ("full", "gap"))
    done = egsynth(smoke_repo, "compare", "--json", full["run_id"], gap["run_id"])
    assert done.returncode == 0, done.stderr
    comparison = json.loads(done.stdout)

    assert comparison["params"] == []  # both variants evaluate under the same params
    differing = {d["key"]: (d["a"], d["b"]) for d in comparison["metrics"]}
    psnr = {v: json.loads((root / "reports" / "metrics" / f"{v}.json").read_text()) for v in ("full", "gap")}
    expected = (psnr["full"]["tasks"]["duplicating"]["psnr"], psnr["gap"]["tasks"]["duplicating"]["psnr"])
    assert differing["duplicating.psnr"] == pytest.approx(expected)
    assert all(a != b for a, b in differing.values())

    same = egsynth(smoke_repo, "compare", full["fingerprint"], full["fingerprint"])
    assert same.returncode == 0 and "no param or metric differs" in same.stdout


def test_a_path_no_stage_produces_is_one_line_naming_it(smoke_repo):
    done = egsynth(smoke_repo, "lineage", "src/egsynth/losses.py")
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "error: src/egsynth/losses.py: no stage in dvc.yaml produces it (it is no out, nor inside one)"
    ]
