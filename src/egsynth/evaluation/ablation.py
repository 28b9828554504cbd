"""The ablation study (Sec. 4, "Ablation Study", Table 1's columns): collected from DVC experiments, rendered
as a section of the report.

The default pipeline trains two variants; the others are DVC experiments on it (`dvc exp run -S
'variants=[...]'`, one more with other seeds). `collect` reads the `reports/metrics.json` each experiment
committed (model -> task -> metric, as `report.combine` writes it) into one file, `reports/ablation/metrics.json`:

    {"experiments": {EXP: {"commit": sha, "params": {"variants", "model.seed", "pretrain.seed",
                                                      "train.seed"},
                           "seed_label": LABEL or null, "models": {column: the model's name in EXP},
                           "backbones": metric -> the networks behind it}},
     "models": {column: task -> metric, and "attention" -> statistic}}

A column is the model's name, followed by " (LABEL)" for an experiment given a seed label (`full (seed 1)`),
so a second seed's models sit beside the first's. `ablation_markdown` and `ablation_html` render it: Table 1's
rows (plus the guidance measures) over the variants in the paper's order, and, per task, the paper's PSNR
ordering of its variants beside ours with the pairs whose order disagrees.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING

from egsynth.evaluation.cases import TASKS
from egsynth.evaluation.report import (
    BASELINES,
    PAPER_TABLE_1,
    TRUTH,
    Row,
    html_table,
    markdown_table,
    table_rows,
)
from egsynth.evaluation.results import METRICS
from egsynth.models.variants import VARIANTS

if TYPE_CHECKING:
    from scmrepo.fs import GitFileSystem
    from scmrepo.git import Git

ABLATION_METRICS = "metrics.json"
"""The collected file's name in the report stage's ablation folder (dvc.yaml's `paths.ablation_metrics`)."""
EXPERIMENT_METRICS = "reports/metrics.json"
"""The file each experiment's commit holds: dvc.yaml's `paths.report_metrics`."""
EXPERIMENT_PARAMS = "params.yaml"
RECORDED_PARAMS = ("variants", "model.seed", "pretrain.seed", "train.seed")
"""The params of each experiment the collected file records: what tells its columns apart."""

PAPER_ORDER = ("spade_vae", "gap", "no_att", "no_fm", "no_global", "full")
"""Table 1's columns of the variants we have, left to right (SPADE-VAE, ours GAP, w/o att, w/o fm, w/o global,
full)."""
COLUMN_ORDER = PAPER_ORDER + tuple(name for name in VARIANTS if name not in PAPER_ORDER)
"""The paper's order, then the variants beyond the paper in the registry's order (full_attention)."""
GUIDANCE_MEASURES = ("miou", "exemplar_gain")
"""Measured per task beside Table 1's metrics (`evaluate.evaluate_cases`); the exemplar gain on swap only."""
ATTENTION = "attention"
ATTENTION_STATISTICS = ("entropy", "label_match")
ORDERING_METRIC = "psnr"
TITLE = "Ablation study"


class CollectError(ValueError):
    """An experiment that cannot be collected; the message is one line naming it and the problem."""


# ---------------------------------------------------------------------------------------------
# collect


def collect(root: Path, experiments: list[str], seed_labels: Mapping[str, str]) -> dict:
    """The collected file (see the module docstring) of the DVC experiments `experiments` of the git and DVC
    repository `root`, each named as `dvc exp run -n NAME` named it, read from its commit: nothing is checked
    out or written. `seed_labels`: experiment -> the label its columns get. CollectError for an unknown or
    ambiguous experiment, a commit without the metrics file, a label for an experiment not collected, or two
    experiments whose models would share a column."""
    from dvc.exceptions import DvcException
    from dvc.repo.experiments.utils import resolve_name
    from dvc.scm import SCM, SCMError

    if len(set(experiments)) < len(experiments):
        raise CollectError(f"{next(e for e in experiments if experiments.count(e) > 1)}: experiment given twice")
    stray = sorted(set(seed_labels) - set(experiments))
    if stray:
        raise CollectError(f"{stray[0]}: has a seed label but is not among the experiments to collect")
    try:
        scm = SCM(str(root))
    except SCMError as error:
        raise CollectError(f"{root}: not a git repository, which DVC experiments need ({error})") from None
    with scm:
        try:
            refs = resolve_name(scm, experiments)
        except DvcException as error:
            raise CollectError(f"{root}: {' '.join(str(error).split())}") from None
        return _collect(scm, root, experiments, refs, seed_labels)


def _collect(scm: Git, root: Path, experiments: list[str], refs: dict, seed_labels: Mapping[str, str]) -> dict:
    collected: dict = {"experiments": {}, "models": {}}
    owner: dict[str, str] = {}  # column -> the experiment it came from
    for name in experiments:
        if refs[name] is None:
            raise CollectError(f"{name}: no DVC experiment of that name in {root} (`dvc exp list` names them)")
        commit = scm.get_ref(str(refs[name]))
        files = scm.get_fs(commit)
        metrics = _read_metrics(files, name, commit)
        label = seed_labels.get(name)
        columns = {(f"{model} ({label})" if label else model): model for model in metrics if model != "backbones"}
        for column in columns:
            if column in owner:
                raise CollectError(
                    f"{name}: its model '{column}' is also {owner[column]}'s; give one of them --seed-label"
                )
            owner[column] = name
            collected["models"][column] = metrics[columns[column]]
        collected["experiments"][name] = {
            "commit": commit,
            "params": _read_params(files, name, commit),
            "seed_label": label,
            "models": columns,
            "backbones": metrics.get("backbones", {}),
        }
    return collected


def _read_metrics(files: GitFileSystem, experiment: str, commit: str) -> dict:
    where = f"{experiment} (commit {commit[:12]})"
    if not files.isfile(EXPERIMENT_METRICS):
        raise CollectError(f"{where}: has no {EXPERIMENT_METRICS}; did its report stage run?")
    try:
        metrics = json.loads(files.read_text(EXPERIMENT_METRICS))
    except (ValueError, UnicodeDecodeError) as error:
        raise CollectError(f"{where}: {EXPERIMENT_METRICS} is not JSON ({error})") from None
    if not isinstance(metrics, dict) or not all(isinstance(value, dict) for value in metrics.values()):
        raise CollectError(f"{where}: {EXPERIMENT_METRICS} is not the report stage's model -> task -> metric")
    return metrics


def _read_params(files: GitFileSystem, experiment: str, commit: str) -> dict:
    """`RECORDED_PARAMS` of the commit's params file, dotted keys as `dvc params diff` names them (None: absent)."""
    import yaml

    where = f"{experiment} (commit {commit[:12]})"
    if not files.isfile(EXPERIMENT_PARAMS):
        raise CollectError(f"{where}: has no {EXPERIMENT_PARAMS}")
    try:
        params = yaml.safe_load(files.read_text(EXPERIMENT_PARAMS))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise CollectError(f"{where}: {EXPERIMENT_PARAMS} is not YAML ({' '.join(str(error).split())})") from None
    recorded = {}
    for key in RECORDED_PARAMS:
        value = params
        for part in key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        recorded[key] = value
    return recorded


def read_collected(folder: Path) -> dict | None:
    """The collected file in `folder` (the report stage's ablation folder), or None where it was not collected."""
    path = folder / ABLATION_METRICS
    return json.loads(path.read_text()) if path.is_file() else None


# ---------------------------------------------------------------------------------------------
# the section


@dataclass(frozen=True)
class Column:
    name: str  # the key in the collected "models"
    model: str  # the model's name in its experiment: a variant or a baseline
    seed_label: str | None


def _seed_groups(collected: dict) -> list[str | None]:
    """The experiments' seed labels: none first (the first seed), then the labels in sorted order."""
    labels = {experiment["seed_label"] for experiment in collected["experiments"].values()}
    return [None, *sorted(labels - {None})]


def ablation_columns(collected: dict) -> list[Column]:
    """The table's columns: the variants in Table 1's order, then the others (`COLUMN_ORDER`); then each seed
    label's variants in the same order; then the baselines of the unlabelled experiments. A labelled
    experiment's baselines and every ground truth stay in the file only: the class mean does not depend on
    the seeds, the untrained generator would only add a second initialization, and the truth's mIoU is the
    report's guidance table's."""
    groups = _seed_groups(collected)
    columns = [
        Column(name, model, experiment["seed_label"])
        for experiment in collected["experiments"].values()
        for name, model in experiment["models"].items()
        if model != TRUTH and not (model in BASELINES and experiment["seed_label"])
    ]

    def position(column: Column) -> tuple:
        baseline = column.model in BASELINES
        order = BASELINES if baseline else COLUMN_ORDER
        within = order.index(column.model) if column.model in order else len(order)
        return baseline, groups.index(column.seed_label), within, column.name

    return sorted(columns, key=position)


def ablation_rows(models: dict, columns: list[str]) -> list[Row]:
    """Table 1's rows (every task some column has, every metric), each task's guidance measures, and the
    attention statistics; a guidance row no column measured is left out."""
    rows = table_rows(models, columns, [], measures=(*METRICS, *GUIDANCE_MEASURES))
    rows += [
        Row(ATTENTION, statistic, {c: models[c].get(ATTENTION, {}).get(statistic, math.nan) for c in columns}, {})
        for statistic in ATTENTION_STATISTICS
    ]
    return [row for row in rows if row.metric in METRICS or any(math.isfinite(v) for v in row.values.values())]


@dataclass(frozen=True)
class Ordering:
    """The paper's and our PSNR ordering of the variants both have, on one task, for one seed label."""

    task: str
    seed_label: str | None
    paper: dict[str, float]  # variant -> the paper's PSNR
    ours: dict[str, float]  # variant -> ours

    def disagreements(self) -> list[tuple[str, str]]:
        """(a, b) for each pair the paper ranks a above b and we do not (lower, or level)."""
        pairs = combinations(_ranked(self.paper), 2)
        return [(a, b) for a, b in pairs if _side(self.ours, a, b) != _side(self.paper, a, b)]

    def line(self) -> str:
        seed = f" ({self.seed_label})" if self.seed_label else ""
        head = f"{self.task} PSNR{seed} — paper: {_ordering(self.paper)}; ours: {_ordering(self.ours)}"
        disagreeing = self.disagreements()
        if not disagreeing:
            return f"{head}; every pair agrees"
        count = len(self.paper) * (len(self.paper) - 1) // 2
        listed = ", ".join(f"{_pair(self.ours, b, a)} (paper: {_pair(self.paper, a, b)})" for a, b in disagreeing)
        return f"{head}; {len(disagreeing)} of {count} pairs disagree: {listed}"


def _ranked(values: dict[str, float]) -> list[str]:
    return sorted(values, key=lambda name: -values[name])


def _side(values: dict[str, float], a: str, b: str) -> int:
    return (values[a] > values[b]) - (values[a] < values[b])


RELATION = {1: ">", 0: "=", -1: "<"}


def _pair(values: dict[str, float], a: str, b: str) -> str:
    """`a > b`, `a = b` or `a < b` by `values`."""
    return f"{a} {RELATION[_side(values, a, b)]} {b}"


def _ordering(values: dict[str, float]) -> str:
    """The names best first, `>` between them, `=` between equal values."""
    ranked = _ranked(values)
    text = ranked[0]
    for before, name in zip(ranked, ranked[1:], strict=False):
        text += f" {'=' if values[before] == values[name] else '>'} {name}"
    return text


def psnr_orderings(collected: dict) -> list[Ordering]:
    """Per task of Table 1 and per seed label, the orderings of the paper's variants both measured (two or
    more), from the collected columns of that label."""
    columns = ablation_columns(collected)
    orderings = []
    for task in (task for task in TASKS if any(task in tasks for tasks in PAPER_TABLE_1.values())):
        for label in _seed_groups(collected):
            ours = {
                column.model: collected["models"][column.name].get(task, {}).get(ORDERING_METRIC, math.nan)
                for column in columns
                if column.seed_label == label and column.model in PAPER_TABLE_1
            }
            ours = {model: value for model, value in ours.items() if math.isfinite(value)}
            paper = {model: PAPER_TABLE_1[model][task][ORDERING_METRIC] for model in ours}
            if len(ours) >= 2:
                orderings.append(Ordering(task, label, paper, ours))
    return orderings


def _experiment_lines(collected: dict) -> list[str]:
    lines = []
    for name, experiment in collected["experiments"].items():
        params = ", ".join(f"{key} {_param(value)}" for key, value in experiment["params"].items())
        label = f", columns labelled ({experiment['seed_label']})" if experiment["seed_label"] else ""
        lines.append(f"{name}: commit {experiment['commit'][:12]}, {params}{label}")
    return lines


def _param(value: object) -> str:
    return f"[{', '.join(map(str, value))}]" if isinstance(value, list) else str(value)


INTRO = (
    "Table 1's layout (Sec. 4) over the DVC experiments below (`egsynth ablation collect`): the variants in "
    "the paper's column order (SPADE-VAE, GAP, w/o att, w/o fm, w/o global, full), then ours beyond the "
    "paper, then those of other seeds (the label in parentheses), then the baselines; the guidance measures "
    "under Table 1's metrics; "
    "the best of each row marked. Experiments:"
)
ORDERINGS_INTRO = (
    "The paper's PSNR ordering of its variants on each of its tasks beside ours, over the variants both have, "
    "with the pairs whose order disagrees (the paper's numbers are COCO-stuff's; see the note under Table 1):"
)


def _section(collected: dict) -> tuple[list[str], list[Row], list[str]]:
    columns = [column.name for column in ablation_columns(collected)]
    rows = ablation_rows(collected["models"], columns)
    return columns, rows, [ordering.line() for ordering in psnr_orderings(collected)]


def ablation_markdown(collected: dict | None) -> list[str]:
    """The section's markdown lines, for `report.markdown_report`; none where nothing was collected."""
    if collected is None:
        return []
    columns, rows, orderings = _section(collected)
    return [
        f"## {TITLE}",
        "",
        INTRO,
        "",
        *_bullets(_experiment_lines(collected)),
        "",
        markdown_table(rows, columns, []),
        "",
        *([ORDERINGS_INTRO, "", *_bullets(orderings), ""] if orderings else []),
    ]


def _bullets(lines: Iterable[str]) -> list[str]:
    return [f"- {line}" for line in lines]


def _html_text(text: str) -> str:
    """`text` escaped for HTML, its markdown code spans (`...`) as <code> elements."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def ablation_html(collected: dict | None) -> str:
    """The section in HTML, for `report.html_report`; empty where nothing was collected."""
    if collected is None:
        return ""
    columns, rows, orderings = _section(collected)
    experiments = "".join(f"<li>{html.escape(line)}</li>" for line in _experiment_lines(collected))
    ordering_html = (
        f'<p>{html.escape(ORDERINGS_INTRO)}</p><ul id="ablation-orderings">'
        + "".join(f"<li>{html.escape(line)}</li>" for line in orderings)
        + "</ul>"
        if orderings
        else ""
    )
    return (
        f'<h2 id="ablation-study">{TITLE}</h2><p>{_html_text(INTRO)}</p><ul>{experiments}</ul>'
        f"{html_table(rows, columns, [], table_id='ablation')}{ordering_html}"
    )
