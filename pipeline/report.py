"""Stage `report`: Table 1 across variants and tasks, and the figures (Sec. 4).

Reads every `evaluate@VARIANT` output and the baselines; writes `reports/metrics.json` (the file
`dvc metrics show` reads), `reports/report.md`, the self-contained `reports/report.html`, and the PNGs
under `reports/figures/`: a qualitative grid per task (Fig. 4), the training loss curves, the finest
MSCA's attention statistics at each training checkpoint (`plots/attention/`, MSCA variants), and each
variant's own figures (swap matrix, attention, interpolation, extrapolation, transfer matrix). Where the
ablation folder holds the file `egsynth ablation collect` writes from DVC experiments, both reports carry the
ablation study's section (Table 1's variant columns, `egsynth.evaluation.ablation`).
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from prefect import flow

from egsynth.config import Params
from egsynth.data.labels import read_label_indices
from egsynth.evaluation import figures
from egsynth.evaluation.ablation import ablation_html, ablation_markdown, read_collected
from egsynth.evaluation.cases import read_cases
from egsynth.evaluation.report import BASELINES, Figure, combine, html_report, markdown_report
from egsynth.evaluation.results import FIGURES_INDEX, SAMPLES_NAME
from egsynth.io import atomic_path, write_json_atomic
from pipeline._stage import run_stage, stage_paths, tracked_stage


def read_png(path: str) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def qualitative_grids(
    variants: list[str], cases: pd.DataFrame, evaluations: Path, out: Path, *, image_size: int
) -> list[Figure]:
    """Fig. 4 per task: inputs, each variant's output (its samples under `evaluations`) and the ground truth
    for the example cases (whose PNGs the tasks stage wrote at `image_size`)."""
    samples = {}
    for variant in variants:
        with np.load(evaluations / variant / SAMPLES_NAME) as data:
            samples[variant] = dict(zip(data["case_ids"].tolist(), data["outputs"], strict=True))
    shown = cases[cases["case_id"].isin(samples[variants[0]])]
    result = []
    for task, rows in shown.groupby("task", sort=False):
        grid = []
        for _, case in rows.iterrows():
            columns = {
                "target labels": read_label_indices(case["labels_path"], image_size),
                "parsed exemplar labels": read_label_indices(case["exemplar_labels_path"], image_size),
                "exemplar": read_png(case["exemplar_path"]),
            }
            columns |= {variant: samples[variant][case["case_id"]] for variant in variants}
            if pd.notna(case["truth_uncorrected_path"]):
                columns["GT before correction"] = read_png(case["truth_uncorrected_path"])
                columns["GT after color correction"] = read_png(case["truth_path"])
            else:
                columns["ground truth"] = read_png(case["truth_path"])
            grid.append(columns)
        path = out / f"qualitative_{task}.png"
        figures.qualitative_grid(grid, path, title=f"{task} task")
        caption = f"The {task} task: target labels, the exemplar's parsed labels, the exemplar, each variant's output."
        result.append(Figure(path, f"Qualitative comparison: {task} (Fig. 4)", caption))
    return result


@flow(name="report")
def report_stage(params: Params) -> None:
    variants = list(params.variants)
    paths = stage_paths()
    evaluations = paths["evaluations"]
    with tracked_stage("report", params) as run, atomic_path(paths["figures"], directory=True) as staging:
        payloads = {v: json.loads((paths["metrics_dir"] / f"{v}.json").read_text()) for v in variants}
        baselines = json.loads(paths["baselines_metrics"].read_text())
        metrics = combine(payloads, baselines)
        cases = read_cases(paths["cases"])
        made = qualitative_grids(variants, cases, evaluations, staging, image_size=params.manifest.image_size)
        curves = {v: pd.read_csv(paths["training_curves"] / f"{v}.csv") for v in variants}
        figures.loss_curves(curves, staging / "loss_curves.png")
        made.append(
            Figure(staging / "loss_curves.png", "Training losses", "Generator and discriminator losses per step.")
        )
        attention = {v: pd.read_csv(paths["attention_curves"] / f"{v}.csv") for v in variants}
        attention = {v: frame for v, frame in attention.items() if not frame.empty}
        if attention:
            path = staging / "attention_curves.png"
            figures.loss_curves(attention, path, window=1, title="finest MSCA attention at each checkpoint")
            caption = (
                "On fixed training pairs: the spatial maps' entropy (1 = uniform) and the share of attention on "
                "exemplar pixels of the target pixel's class."
            )
            made.append(Figure(path, "Attention over training", caption))
        for variant in variants:
            for entry in json.loads((evaluations / variant / FIGURES_INDEX).read_text()):
                copy = staging / f"{variant}_{entry['file']}"
                shutil.copyfile(evaluations / variant / entry["file"], copy)
                made.append(Figure(copy, f"{entry['title']}: {variant}", entry["caption"]))

        models = variants + [name for name in BASELINES if name in baselines]
        count = {task: int(n) for task, n in cases["task"].value_counts().sort_index().items()}
        ablation = read_collected(paths["ablation_metrics"])
        with atomic_path(paths["report_html"]) as html_path:
            html_path.write_text(html_report(metrics, models, made, cases=count, ablation=ablation_html(ablation)))
        final = [Figure(paths["figures"] / f.path.name, f.title, f.caption) for f in made]
        with atomic_path(paths["report_md"]) as md_path:
            markdown = markdown_report(
                metrics,
                models,
                final,
                cases=count,
                relative_to=paths["report_md"].parent,
                ablation=ablation_markdown(ablation),
            )
            md_path.write_text(markdown)
        write_json_atomic(paths["report_metrics"], metrics)
        run.log_metrics({k: v for k, v in metrics.items() if k != "backbones"})
        run.log_artifact(paths["report_html"])


if __name__ == "__main__":
    run_stage(report_stage)
