"""End to end: `dvc repro` of configs/smoke.yaml in a temporary copy of the repo."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from egsynth.tracking.queries import find_stage_runs
from tests._repo import copy_repo, run, smoke_params

pytestmark = pytest.mark.e2e


def test_repro_runs_every_stage(smoke_repo):
    root, _, first = smoke_repo
    stages = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    assert set(stages) == {
        *("scenes", "filter", "parser", "parse", "manifest", "pretrain", "train@full", "train@gap"),
        *("tasks", "evaluate@full", "evaluate@gap", "baselines", "report"),
    }
    assert all(f"Running stage '{stage}'" in first.stdout for stage in stages)
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
                (record,) = find_stage_runs(root, out=out["path"], md5=out["md5"])
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


def test_filter_keeps_exactly_the_outdoor_scenes_of_the_embedded_dataset(smoke_repo):
    root, _, _ = smoke_repo
    sidecar = pd.read_parquet(root / "data" / "raw" / "scenes" / "procedural.parquet")
    kept = pd.read_parquet(root / "data" / "interim" / "scenes.parquet")
    assert set(kept["file_name"]) == set(sidecar.loc[sidecar["kind"] == "outdoor", "file_name"])


def test_an_unknown_param_key_stops_the_stage_with_one_line_naming_key_and_file(tmp_path):
    params = smoke_params()
    params["scenes"]["num_trian"] = params["scenes"].pop("num_train")
    env = copy_repo(tmp_path, params)
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.scenes"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        f"scenes: {tmp_path / 'params.yaml'}: unknown key 'scenes.num_trian' "
        "(expected one of: seed, num_train, num_val, height, width, indoor_fraction, object_fraction, "
        "jpeg_quality, workers)"
    ]
    assert not (tmp_path / "data").exists()


@pytest.mark.long(seconds=38)
def test_a_real_cocostuff_tree_is_read_in_place_and_a_bad_label_map_is_named(tmp_path, prefect_api):
    """`data.source: coco_stuff`: the tree is validated and digested, never copied; filter reads it in place."""
    from egsynth.data import procedural
    from tests.cocotree import stripes, write_tree

    tree = write_tree(
        tmp_path / "cocostuff",
        {
            "beach": ("train2017", procedural.LabelMap(stripes(("sky-other", 0.5), ("sea", 0.2), ("sand", 0.3)), ())),
            "kitchen": ("train2017", procedural.LabelMap(stripes(("wall-tile", 0.7), ("floor-tile", 0.3)), ())),
            "field": ("val2017", procedural.LabelMap(stripes(("sky-other", 0.4), ("grass", 0.6)), ())),
        },
    )
    params = smoke_params()
    params["data"] = {"source": "coco_stuff", "root": str(tree.root)}
    repo = tmp_path / "repo"
    repo.mkdir()
    env = copy_repo(repo, params, prefect_api)
    run([sys.executable, "-m", "dvc", "repro", "filter"], repo, env)
    assert sorted(p.name for p in (repo / "data" / "raw" / "scenes").iterdir()) == ["dataset.json"]
    kept = pd.read_parquet(repo / "data" / "interim" / "scenes.parquet")
    assert dict(zip(kept["file_name"], kept["split"], strict=True)) == {"beach.jpg": "train", "field.jpg": "test"}
    assert set(kept["image_path"]) == {
        str(tree.image_dir("train2017") / "beach.jpg"),
        str(tree.image_dir("val2017") / "field.jpg"),
    }

    bad_label = tree.label_dir("val2017") / "field.png"
    Image.fromarray(np.full((32, 32), 190, np.uint8)).save(bad_label)
    failed = subprocess.run(
        [sys.executable, "-m", "dvc", "repro", "--force", "--single-item", "filter"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
    )
    assert failed.returncode != 0
    assert f"filter: {bad_label}: label values [190] outside 0-181 and 255 (unlabeled)" in failed.stderr
    assert list((repo / "data" / "interim").iterdir()) == [], "no half-written table or staging file is left"
    run(
        [sys.executable, "-m", "dvc", "checkout", "filter"], repo, env
    )  # DVC removed the out before the run; its cache keeps it
    assert len(pd.read_parquet(repo / "data" / "interim" / "scenes.parquet")) == 2


def test_every_kept_scene_is_parsed_and_the_parser_reports_its_miou(smoke_repo):
    root, _, _ = smoke_repo
    scenes = pd.read_parquet(root / "data" / "interim" / "scenes.parquet")
    index = pd.read_parquet(root / "data" / "interim" / "parsed" / "index.parquet")
    assert sorted(index["image_id"]) == sorted(scenes["image_id"])
    assert all((root / path).is_file() for path in index["parsed_path"])
    report = yaml.safe_load((root / "reports" / "metrics" / "parser.json").read_text())
    assert 0 <= report["miou"] <= 1


def test_trained_generators_reload_and_synthesize_at_the_label_map_size(smoke_repo):
    import torch

    from egsynth.data.encoding import one_hot
    from egsynth.models.generator import load_generator

    root, _, _ = smoke_repo
    for variant in ("full", "gap"):
        generator = load_generator(root / "models" / variant / "generator.pt")
        assert generator.variant == variant and generator.backbone == "vgg19-random"
        labels = one_hot(torch.randint(0, 171, (1, 48, 40)))
        with torch.no_grad():
            image = generator(labels, torch.zeros(1, 3, 32, 32), one_hot(torch.randint(0, 171, (1, 32, 32)))).image
        assert image.shape == (1, 3, 48, 40) and torch.isfinite(image).all()
        curve = pd.read_csv(root / "plots" / "train" / f"{variant}.csv")
        assert len(curve) > 0 and curve["g_loss"].notna().all()


def test_training_logs_the_attention_statistics_of_msca_variants_at_every_checkpoint(smoke_repo):
    root, _, _ = smoke_repo
    full = pd.read_csv(root / "plots" / "attention" / "full.csv")
    assert list(full.columns) == ["step", "entropy", "label_match"] and len(full) > 0
    assert (
        full["step"].is_monotonic_increasing
        and full[["entropy", "label_match"]].apply(lambda v: v.between(0, 1)).all().all()
    )
    gap = pd.read_csv(root / "plots" / "attention" / "gap.csv")
    assert list(gap.columns) == ["step", "entropy", "label_match"] and gap.empty  # no attention to measure


METRIC_KEYS = {"psnr", "ssim", "lpips", "fid", "style"}
TASK_NAMES = {"duplicating", "mirroring", "retrieving", "swap"}
ATTENDING = {"full", "untrained"}  # MSCA generators: the `untrained` baseline is `full` at initialization


def expected_cells(model: str) -> set[tuple[str, str]]:
    """(task or "attention", metric) of every metric a model has in reports/metrics.json."""
    if model == "truth":
        return {(task, "miou") for task in TASK_NAMES}
    cells = {(task, metric) for task in TASK_NAMES for metric in METRIC_KEYS | {"miou"}} | {("swap", "exemplar_gain")}
    return cells | ({("attention", "entropy"), ("attention", "label_match")} if model in ATTENDING else set())


def test_metrics_json_has_every_cell_and_names_its_backbones(smoke_repo):
    import json

    root, _, _ = smoke_repo
    metrics = json.loads((root / "reports" / "metrics.json").read_text())
    assert set(metrics) == {"full", "gap", "untrained", "class_mean", "truth", "backbones"}
    for model in ("full", "gap", "untrained", "class_mean", "truth"):
        cells = {(group, metric): value for group, values in metrics[model].items() for metric, value in values.items()}
        assert set(cells) == expected_cells(model), model
        assert all(np.isfinite(v) for v in cells.values()), (model, cells)
    for model in ATTENDING:
        assert all(0 <= v <= 1 for v in metrics[model]["attention"].values()), metrics[model]["attention"]
    assert all(0 <= metrics["truth"][task]["miou"] <= 1 for task in TASK_NAMES)
    assert metrics["class_mean"]["swap"]["exemplar_gain"] > 0  # its colors come from the exemplar
    assert set(metrics["backbones"]) == METRIC_KEYS | {"miou"}
    assert "stand-in" in metrics["backbones"]["lpips"] and "stand-in" in metrics["backbones"]["fid"]
    assert "parser" in metrics["backbones"]["miou"]


def test_dvc_metrics_show_lists_every_metric_of_every_model(smoke_repo):
    import json

    root, env, _ = smoke_repo
    shown = json.loads(run([sys.executable, "-m", "dvc", "metrics", "show", "--json"], root, env).stdout)

    def tables(node):  # every mapping DVC shows that holds both variants' metrics
        if isinstance(node, dict):
            if isinstance(node.get("full"), dict) and isinstance(node.get("gap"), dict):
                yield node
            for value in node.values():
                yield from tables(value)

    (metrics,) = list(tables(shown))
    for model in ("full", "gap", "untrained", "class_mean", "truth"):
        cells = {(group, metric) for group, values in metrics[model].items() for metric in values}
        assert cells == expected_cells(model), model


def test_report_embeds_the_table_and_every_figure(smoke_repo):
    import base64
    import io
    import re

    root, _, _ = smoke_repo
    page = (root / "reports" / "report.html").read_text()
    assert '<table id="table-1">' in page and '<table id="guidance">' in page
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    figures = sorted((root / "reports" / "figures").glob("*.png"))
    assert len(images) == len(figures) > 0
    for data in images:
        Image.open(io.BytesIO(base64.b64decode(data))).verify()
    names = {path.name for path in figures}
    for expected in (
        "qualitative_duplicating.png",
        "qualitative_retrieving.png",
        "qualitative_swap.png",
        "loss_curves.png",
        "attention_curves.png",
        "full_swap_matrix.png",
        "full_attention_0.png",
        "full_style_interpolation.png",
        "full_spatial_interpolation.png",
        "full_extrapolation.png",
        "full_transfer_matrix.png",
        "full_dendrogram.png",
        "gap_swap_matrix.png",
    ):
        assert expected in names
    markdown = (root / "reports" / "report.md").read_text()
    assert all(f"figures/{name}" in markdown for name in names)


def test_training_logs_sample_grids_at_every_checkpoint(smoke_repo):
    from mlflow import MlflowClient

    root, env, _ = smoke_repo
    os.environ["MLFLOW_TRACKING_URI"] = env["MLFLOW_TRACKING_URI"]
    try:
        (record,) = find_stage_runs(root, out="models/full/generator.pt")
        grids = MlflowClient(env["MLFLOW_TRACKING_URI"]).list_artifacts(record.run_id, "samples")
    finally:
        del os.environ["MLFLOW_TRACKING_URI"]
    curve = pd.read_csv(root / "plots" / "train" / "full.csv")
    checkpoints = -(-len(curve) // smoke_params()["train"]["checkpoint_every"])  # every k steps and at the end
    assert len(grids) >= checkpoints - 1 and all(g.path.endswith(".png") for g in grids)


def per_step_losses_logged(root: Path, env: dict) -> int:
    """How many steps the newest train@full run trained itself (a run resumed at the end trains none): the smoke
    preset updates G at every step, warm-up and GAN epochs alike, and each logs g_loss."""
    from mlflow import MlflowClient

    os.environ["MLFLOW_TRACKING_URI"] = env["MLFLOW_TRACKING_URI"]
    try:
        newest, *_ = find_stage_runs(root, out="models/full/generator.pt")
    finally:
        del os.environ["MLFLOW_TRACKING_URI"]
    return len(MlflowClient(env["MLFLOW_TRACKING_URI"]).get_metric_history(newest.run_id, "g_loss"))


@pytest.mark.long(seconds=30)
def test_a_code_change_trains_from_scratch_and_an_unchanged_rerun_resumes(smoke_repo, smoke_copy):
    """The checkpoint of train@full is keyed by params and deps: after a code change (here a comment in
    src/egsynth/training/assembly.py, a dep of no stage before train@*) `dvc repro` discards it and trains
    afresh; rerun with nothing changed, the stage resumes its own checkpoint (finished: it trains no step)."""
    first = smoke_repo[2]
    assert "discarding" not in first.stdout + first.stderr, "a fresh pipeline has no checkpoint to discard"
    repo, env = smoke_copy
    env = env | {"PREFECT_LOGGING_ROOT_LEVEL": "INFO"}  # the resume line is INFO
    checkpoints = repo / "models" / "full" / "checkpoints"
    (old,) = checkpoints.iterdir()
    steps = len(pd.read_csv(repo / "plots" / "train" / "full.csv"))
    dvc = [sys.executable, "-m", "dvc"]

    with (repo / "src" / "egsynth" / "training" / "assembly.py").open("a") as assembly:
        assembly.write("# a code change that leaves every param alone\n")
    changed = run([*dvc, "repro", "train@full"], repo, env)
    log = changed.stdout + changed.stderr
    assert re.findall(r"Running stage '([^']+)'", changed.stdout) == ["train@full"]
    discarded = f"discarding checkpoint models/full/checkpoints/{old.name}: written under the same params by other deps"
    assert discarded in log
    assert "resuming" not in log
    (new,) = checkpoints.iterdir()
    assert new.name != old.name and new.name.split("-")[0] == old.name.split("-")[0], "same params, other deps"
    assert per_step_losses_logged(repo, env) == steps, "trained every step itself"

    written = new.stat().st_mtime_ns
    unchanged = run([*dvc, "repro", "--force", "--single-item", "train@full"], repo, env)
    log = unchanged.stdout + unchanged.stderr
    assert re.findall(r"Running stage '([^']+)'", unchanged.stdout) == ["train@full"]
    assert "discarding" not in log
    assert f"resuming full from models/full/checkpoints/{new.name} at step {steps}" in log
    assert [path.name for path in checkpoints.iterdir()] == [new.name]
    assert new.stat().st_mtime_ns == written, "a finished checkpoint is not written again"
    assert per_step_losses_logged(repo, env) == 0
