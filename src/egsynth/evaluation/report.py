"""The report of stage `report`: Table 1's layout over our variants and baselines, and the figures.

`combine` gathers the evaluation files into `reports/metrics.json` (model -> task -> metric, plus
model -> "attention" -> statistic for MSCA models and "truth" -> task -> "miou"; the file `dvc
metrics show` reads); `markdown_report` and `html_report` render the same table (rows task x metric,
columns models, the best of each row marked) beside the paper's COCO-stuff numbers, each trained
variant's duplicating PSNR against the baselines, the guidance table (`guidance_rows`: exemplar gain,
attention entropy and label match, layout mIoU with the ground truth's as ceiling), then the figures.
The HTML embeds every figure, so the one file is the whole report.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from egsynth.evaluation.cases import SWAP, TASKS
from egsynth.evaluation.results import HIGHER_IS_BETTER, METRICS, model_metrics

PAPER_TABLE_1 = {
    # Sec. 4, Table 1 (COCO-stuff, 499 test scenes, 256 px patches / 512 px images, ImageNet backbones)
    "full": {
        "retrieving": {"psnr": 16.65, "lpips": 0.437, "fid": 91.91, "style": 5.34e-4},
        "mirroring": {"psnr": 17.03, "lpips": 0.397, "fid": 76.75, "style": 3.96e-4},
        "duplicating": {"psnr": 17.03, "lpips": 0.397, "fid": 76.64, "style": 3.97e-4},
    },
    "gap": {
        "retrieving": {"psnr": 15.85, "lpips": 0.457, "fid": 101.74, "style": 6.40e-4},
        "mirroring": {"psnr": 15.80, "lpips": 0.438, "fid": 89.15, "style": 7.45e-4},
        "duplicating": {"psnr": 15.80, "lpips": 0.438, "fid": 89.22, "style": 7.41e-4},
    },
    "no_att": {
        "retrieving": {"psnr": 11.96, "lpips": 0.522, "fid": 112.83, "style": 7.10e-3},
        "mirroring": {"psnr": 11.95, "lpips": 0.510, "fid": 102.41, "style": 7.99e-3},
        "duplicating": {"psnr": 11.94, "lpips": 0.510, "fid": 103.23, "style": 7.94e-3},
    },
    "no_fm": {
        "retrieving": {"psnr": 16.24, "lpips": 0.451, "fid": 100.01, "style": 7.62e-4},
        "mirroring": {"psnr": 16.02, "lpips": 0.437, "fid": 90.52, "style": 8.76e-4},
        "duplicating": {"psnr": 16.02, "lpips": 0.438, "fid": 90.56, "style": 8.81e-4},
    },
    "no_global": {
        "retrieving": {"psnr": 15.98, "lpips": 0.446, "fid": 96.66, "style": 7.21e-4},
        "mirroring": {"psnr": 16.58, "lpips": 0.421, "fid": 85.92, "style": 6.69e-4},
        "duplicating": {"psnr": 16.62, "lpips": 0.421, "fid": 86.20, "style": 6.53e-4},
    },
    "spade_vae": {
        "retrieving": {"psnr": 15.77, "lpips": 0.483, "fid": 102.68, "style": 1.07e-3},
        "mirroring": {"psnr": 15.37, "lpips": 0.477, "fid": 90.99, "style": 1.67e-3},
        "duplicating": {"psnr": 15.43, "lpips": 0.476, "fid": 90.97, "style": 1.66e-3},
    },
}

NOT_COMPARABLE = (
    "The paper's numbers (COCO-stuff, 512 px, ImageNet VGG-16 LPIPS, Inception FID, 40 epochs on GPUs) are "
    "shown for orientation only: ours come from different data (the embedded procedural scenes unless "
    "data.source is coco_stuff), a smaller image size, far shorter training and, where the weights are "
    "absent, stand-in backbones for LPIPS, FID and the style loss (named under the table); compare columns "
    "within a table, not across the two."
)

METRIC_NAMES = {
    "psnr": "PSNR ↑",
    "ssim": "SSIM ↑",
    "lpips": "LPIPS ↓",
    "fid": "FID ↓",
    "style": "L_style ↓",
    "miou": "layout mIoU ↑",
}
GUIDANCE_METRIC_NAMES = {
    "exemplar_gain": "exemplar gain (dB) ↑",
    "entropy": "entropy (1 = uniform)",
    "label_match": "label match ↑",
}
"""The names, as rows of a task x metric table, of the guidance measures that are no metric of Table 1."""
RANKED = HIGHER_IS_BETTER | {"miou": True, "exemplar_gain": True, "label_match": True}
"""Whether higher is better, for each measure a row marks the best of; the attention entropy has no better side."""
BASELINES = ("untrained", "class_mean")
TRUTH = "truth"
MODEL_NAMES = {"untrained": "untrained full", "class_mean": "class mean color", TRUTH: "ground truth"}


def combine(variants: dict[str, dict], baselines: dict[str, dict]) -> dict:
    """reports/metrics.json: `model_metrics` of every variant and baseline (and the truth), plus the
    backbones of each metric, the labels of every model joined."""
    models = variants | baselines
    labels = {metric: {p["backbones"].get(metric) for p in models.values()} - {None} for metric in METRIC_NAMES}
    backbones = {metric: sorted(names) for metric, names in labels.items() if names}
    return {name: model_metrics(payload) for name, payload in models.items()} | {
        "backbones": {metric: "; ".join(labels) for metric, labels in backbones.items()}
    }


@dataclass(frozen=True)
class Row:
    task: str
    metric: str
    values: dict[str, float]  # model -> value
    paper: dict[str, float | None]  # variant -> the paper's value (None where the paper has none)

    @property
    def best(self) -> str | None:
        """The model of the best value (None without a finite value, or for a measure `RANKED` lacks)."""
        finite = {k: v for k, v in self.values.items() if math.isfinite(v)}
        if not finite or self.metric not in RANKED:
            return None
        pick = max if RANKED[self.metric] else min
        return pick(finite, key=finite.get)

    @property
    def name(self) -> str:
        return METRIC_NAMES.get(self.metric) or GUIDANCE_METRIC_NAMES[self.metric]


def table_rows(
    metrics: dict, models: list[str], paper_variants: list[str], measures: Sequence[str] = METRICS
) -> list[Row]:
    """A row per task some model has and per measure (Table 1's metrics unless told), a missing value NaN."""
    tasks = [task for task in TASKS if any(task in metrics[m] for m in models)]
    rows = []
    for task in tasks:
        for metric in measures:
            values = {m: metrics[m].get(task, {}).get(metric, math.nan) for m in models}
            paper = {v: PAPER_TABLE_1.get(v, {}).get(task, {}).get(metric) for v in paper_variants}
            rows.append(Row(task, metric, values, paper))
    return rows


def format_value(metric: str, value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    if metric == "style":
        return f"{value:.2e}"
    if metric == "exemplar_gain":
        return f"{value:+.2f}"
    if metric in ("psnr", "fid"):
        return f"{value:.2f}"
    return f"{value:.3f}"


def _model_name(model: str) -> str:
    return MODEL_NAMES.get(model, model)


def markdown_table(rows: list[Row], models: list[str], paper_variants: list[str]) -> str:
    header = ["task", "metric", *(_model_name(m) for m in models), *(f"paper {v}" for v in paper_variants)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = []
        for model in models:
            text = format_value(row.metric, row.values[model])
            cells.append(f"**{text}**" if model == row.best else text)
        cells += [format_value(row.metric, row.paper[v]) for v in paper_variants]
        lines.append(f"| {row.task} | {row.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def html_table(rows: list[Row], models: list[str], paper_variants: list[str], *, table_id: str) -> str:
    """`markdown_table` in HTML: the best of each row highlighted, a rule above each task's first row."""
    head = "".join(f"<th>{html.escape(_model_name(m))}</th>" for m in models)
    head += "".join(f'<th class="paper">paper {html.escape(v)}</th>' for v in paper_variants)
    body = []
    for i, row in enumerate(rows):
        first = ' class="first"' if i == 0 or rows[i - 1].task != row.task else ""
        cells = "".join(
            f"<td{' class=best' if m == row.best else ''}>{format_value(row.metric, row.values[m])}</td>"
            for m in models
        )
        cells += "".join(f'<td class="paper">{format_value(row.metric, row.paper[v])}</td>' for v in paper_variants)
        task, metric = html.escape(row.task), html.escape(row.name)
        body.append(f'<tr{first}><td class="task">{task}</td><td class="metric">{metric}</td>{cells}</tr>')
    return (
        f'<table id="{table_id}"><thead><tr><th>task</th><th>metric</th>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>"
    )


CHECK_TASK, CHECK_METRIC = "duplicating", "psnr"
CHECK_INTRO = (
    "Each trained variant against the baselines on the duplicating task's PSNR, where a trained model "
    "should beat both (the exemplar is the ground truth itself):"
)


def baseline_check(metrics: dict, models: list[str]) -> list[str]:
    """One line per trained model among `models` (the report's columns): its duplicating PSNR and, for
    each baseline among `models`, whether and by how much it is above or below it. Empty without a
    baseline."""
    baselines = [m for m in models if m in BASELINES and CHECK_TASK in metrics[m]]
    if not baselines:
        return []
    lines = []
    for model in (m for m in models if m not in BASELINES and CHECK_TASK in metrics[m]):
        value = metrics[model][CHECK_TASK][CHECK_METRIC]
        comparisons = []
        for baseline in baselines:
            other = metrics[baseline][CHECK_TASK][CHECK_METRIC]
            side = "above" if value > other else "below" if value < other else "level with"
            comparisons.append(f"{side} {_model_name(baseline)} {other:.2f} ({value - other:+.2f} dB)")
        lines.append(f"{model} {value:.2f} dB: " + ", ".join(comparisons))
    return lines


GUIDANCE_TITLE = "Does the output follow its inputs?"
GUIDANCE_INTRO = (
    "Exemplar gain: the swap PSNR with the true exemplar minus the "
    "swap PSNR with another case's exemplar (same target labels and ground truth); 0 for a model that "
    "ignores its exemplar. Attention entropy: the finest MSCA's spatial maps, 1 = uniform over the exemplar. "
    "Label match: the share of the finest MSCA's attention that lands on exemplar pixels of the target "
    "pixel's class (where the exemplar has it). Layout mIoU: the pipeline's parser on the images against the "
    "target labels (SPADE's measure); the ground truth's is its ceiling. '–': not measured (no attention, or "
    "no parser network)."
)
GUIDANCE_ROWS = (
    (SWAP, "exemplar_gain", "swap: exemplar gain (dB) ↑"),
    ("attention", "entropy", "attention entropy (1 = uniform)"),
    ("attention", "label_match", "attention label match ↑"),
    *((task, "miou", f"{task}: {METRIC_NAMES['miou']}") for task in TASKS),
)
"""(key in metrics.json under a model, metric, row name) of the guidance table."""


def guidance_rows(metrics: dict, models: list[str]) -> list[tuple[str, list[str]]]:
    """(row name, one formatted cell per model) for the rows of GUIDANCE_ROWS some model has."""
    rows = []
    for group, metric, name in GUIDANCE_ROWS:
        values = [metrics.get(model, {}).get(group, {}).get(metric) for model in models]
        if any(value is not None for value in values):
            rows.append((name, [format_value(metric, value) for value in values]))
    return rows


def guidance_models(metrics: dict, models: list[str]) -> list[str]:
    """The guidance table's columns: Table 1's models, then the ground truth where it was measured."""
    return models + ([TRUTH] if TRUTH in metrics and TRUTH not in models else [])


def guidance_markdown(metrics: dict, models: list[str]) -> list[str]:
    columns = guidance_models(metrics, models)
    rows = guidance_rows(metrics, columns)
    if not rows:
        return []
    header = ["measure", *(_model_name(m) for m in columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += [f"| {name} | " + " | ".join(cells) + " |" for name, cells in rows]
    return [f"## {GUIDANCE_TITLE}", "", GUIDANCE_INTRO, "", *lines, ""]


def guidance_html(metrics: dict, models: list[str]) -> str:
    columns = guidance_models(metrics, models)
    rows = guidance_rows(metrics, columns)
    if not rows:
        return ""
    head = "".join(f"<th>{html.escape(_model_name(m))}</th>" for m in columns)
    body = "".join(
        f'<tr><td class="metric">{html.escape(name)}</td>' + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>"
        for name, cells in rows
    )
    return (
        f"<h2>{html.escape(GUIDANCE_TITLE)}</h2><p>{html.escape(GUIDANCE_INTRO)}</p>"
        f'<table id="guidance"><thead><tr><th>measure</th>{head}</tr></thead><tbody>{body}</tbody></table>'
    )


@dataclass(frozen=True)
class Figure:
    path: Path  # the PNG, under reports/figures/
    title: str
    caption: str


def _backbone_lines(backbones: dict[str, str]) -> list[str]:
    return [f"- {METRIC_NAMES[metric]}: {label}" for metric, label in backbones.items()]


def _check_markdown(metrics: dict, models: list[str]) -> list[str]:
    lines = baseline_check(metrics, models)
    return [CHECK_INTRO, "", *(f"- {line}" for line in lines), ""] if lines else []


def markdown_report(
    metrics: dict,
    models: list[str],
    figures: list[Figure],
    *,
    cases: dict[str, int],
    relative_to: Path,
    ablation: Sequence[str] = (),
) -> str:
    """The report in markdown; `ablation`: the lines of the ablation study's section (`ablation_markdown` of
    `egsynth.evaluation.ablation`), placed before the figures."""
    paper_variants = [m for m in models if m in PAPER_TABLE_1]
    rows = table_rows(metrics, models, paper_variants)
    parts = [
        "# egsynth evaluation report",
        "",
        "Table 1's layout (Sec. 4): rows task x metric, columns our models; the best of each row in bold. "
        f"Cases per task: {', '.join(f'{task} {n}' for task, n in cases.items())}.",
        "",
        markdown_table(rows, models, paper_variants),
        "",
        *_check_markdown(metrics, models),
        NOT_COMPARABLE,
        "",
        "Backbones behind each metric:",
        "",
        *_backbone_lines(metrics["backbones"]),
        "",
        *guidance_markdown(metrics, models),
        *ablation,
    ]
    for figure in figures:
        parts += [
            f"## {figure.title}",
            "",
            figure.caption,
            "",
            f"![{figure.title}]({figure.path.relative_to(relative_to).as_posix()})",
            "",
        ]
    return "\n".join(parts)


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; font-size: 14px; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
th { background: #f3f3f3; } td.task, td.metric { text-align: left; }
td.best { font-weight: bold; background: #e6f4e6; } td.paper, th.paper { color: #777; background: #fafafa; }
tr.first td { border-top: 2px solid #888; }
figure { margin: 2em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { color: #555; font-size: 14px; margin-top: 0.5em; }
p.note { color: #555; font-size: 14px; }
"""


def html_report(
    metrics: dict, models: list[str], figures: list[Figure], *, cases: dict[str, int], ablation: str = ""
) -> str:
    """The report as one HTML page, every figure embedded; `ablation`: the ablation study's section
    (`ablation_html` of `egsynth.evaluation.ablation`), placed before the figures."""
    paper_variants = [m for m in models if m in PAPER_TABLE_1]
    rows = table_rows(metrics, models, paper_variants)
    backbones = "".join(f"<li>{html.escape(line[2:])}</li>" for line in _backbone_lines(metrics["backbones"]))
    checks = baseline_check(metrics, models)
    check_html = (
        f'<p>{html.escape(CHECK_INTRO)}</p><ul id="baseline-check">'
        + "".join(f"<li>{html.escape(line)}</li>" for line in checks)
        + "</ul>"
        if checks
        else ""
    )
    figure_html = []
    for figure in figures:
        data = base64.b64encode(figure.path.read_bytes()).decode("ascii")
        figure_html.append(
            f'<figure id="{figure.path.stem}"><h2>{html.escape(figure.title)}</h2>'
            f'<img alt="{html.escape(figure.title)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(figure.caption)}</figcaption></figure>"
        )
    case_text = ", ".join(f"{task} {n}" for task, n in cases.items())
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>egsynth evaluation report</title>'
        f"<style>{_STYLE}</style></head><body>"
        "<h1>egsynth evaluation report</h1>"
        "<p>Table 1's layout (Sec. 4): rows task x metric, columns our models; the best of each row is "
        f"highlighted. Cases per task: {html.escape(case_text)}.</p>"
        f"{html_table(rows, models, paper_variants, table_id='table-1')}"
        f"{check_html}"
        f'<p class="note">{html.escape(NOT_COMPARABLE)}</p>'
        f"<p>Backbones behind each metric:</p><ul>{backbones}</ul>"
        f"{guidance_html(metrics, models)}{ablation}"
        f"{''.join(figure_html)}</body></html>\n"
    )
