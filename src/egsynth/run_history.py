"""The history of the pipeline's runs: which ran lately (`egsynth runs`), what differs between two (`egsynth compare`).

`recent_runs` reads the latest pipeline runs (one per git commit + params) back from MLflow with their stage
runs. `compare` diffs two MLflow runs itself, and two DVC revisions through `dvc exp diff`'s own function
(`Repo.experiments.diff`), which resolves experiment names and git revisions alike. Where a single file came
from is `egsynth.lineage`'s, whose `LineageError` these raise too.

Every function returns dataclasses; `format_*` turn them into the text the CLI prints. MLflow is read
through `egsynth.tracking.queries` only.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from egsynth.lineage import WIDTH, LineageError, local_time, repository_root, require_store, wrapped_pairs
from egsynth.tracking.queries import (
    PipelineRecord,
    StageRecord,
    StoreError,
    existing_store,
    find_pipeline,
    find_run,
    recent_pipelines,
)

DEFAULT_KEY_METRICS = ("psnr", "miou", "kept")  # `egsynth runs`: PSNR per task, the parser's mIoU, scenes kept


# ----------------------------------------------------------------------------
# recent runs


def recent_runs(limit: int, repo_root: Path | None = None) -> list[PipelineRecord]:
    """The `limit` pipeline runs (one per git commit + params) that started last, newest first."""
    root = repository_root(repo_root)
    require_store(root)
    try:
        return recent_pipelines(root, limit)
    except StoreError as error:
        raise LineageError(str(error)) from None


def key_metrics(metrics: Mapping[str, float], names: Iterable[str]) -> dict[str, float]:
    """The metrics named `name`, or ending in `.name` (a flattened `task.name`), for each of `names`."""
    names = tuple(names)
    return {key: value for key, value in metrics.items() if any(key == n or key.endswith(f".{n}") for n in names)}


def format_runs(pipelines: list[PipelineRecord], names: Iterable[str] = DEFAULT_KEY_METRICS) -> str:
    """A table per pipeline run: its stage runs, newest first, each followed by its key metrics."""
    names = tuple(names)
    if not pipelines:
        return "no pipeline runs yet"
    indent = " " * 6
    blocks = []
    for pipeline in pipelines:
        lines = [
            f"pipeline {pipeline.fingerprint}  run {pipeline.run_id}  commit {pipeline.commit[:12]}"
            f"  first stage {local_time(pipeline.start_time)}  ({len(pipeline.stages)} stage runs)",
            f"  {'started':<19}  {'stage':<16}  {'status':<8}  run id",
        ]
        for stage in pipeline.stages:
            lines.append(f"  {local_time(stage.start_time):<19}  {stage.stage:<16}  {stage.status:<8}  {stage.run_id}")
            metrics = {key: f"{value:.4g}" for key, value in key_metrics(stage.metrics, names).items()}
            lines += [indent + line for line in wrapped_pairs(metrics, WIDTH - len(indent))]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


# ----------------------------------------------------------------------------
# comparisons


@dataclass(frozen=True)
class Difference:
    """One param or metric whose value differs between A and B."""

    key: str  # a flattened param or metric; `stage/metric` for a pipeline run, `file:key` for a DVC revision
    a: Any  # None: A has no such key
    b: Any


@dataclass(frozen=True)
class Comparison:
    """The params and metrics that differ between A and B, nothing else."""

    a: str  # what A resolved to, e.g. "stage run <id> (train@full, pipeline <fingerprint>)"
    b: str
    params: tuple[Difference, ...]
    metrics: tuple[Difference, ...]


@dataclass(frozen=True)
class _Side:
    label: str
    params: Mapping[str, Any]
    metrics: Mapping[str, Any]


def compare(a: str, b: str, repo_root: Path | None = None) -> Comparison:
    """What differs between two MLflow runs (stage or pipeline runs, by run id or pipeline fingerprint) or
    two DVC revisions (experiment names or git revisions, as `dvc exp diff A B` takes them)."""
    root = repository_root(repo_root)
    side_a, side_b = _mlflow_side(a, root), _mlflow_side(b, root)
    if side_a and side_b:
        return Comparison(
            a=side_a.label,
            b=side_b.label,
            params=_differences(side_a.params, side_b.params),
            metrics=_differences(side_a.metrics, side_b.metrics),
        )
    if side_a or side_b:
        ref, other = (b, a) if side_a else (a, b)
        raise LineageError(
            f"{ref}: not an MLflow run id or pipeline fingerprint, but {other} is one: compare two runs or two"
            " DVC experiments"
        )
    try:
        existing_store(root)
        unknown = f"not an MLflow run id or pipeline fingerprint, nor a DVC experiment or git revision of {root}"
    except (FileNotFoundError, StoreError) as error:  # then say why no run id could match
        unknown = f"not a DVC experiment or git revision of {root}, and no run id can match: {error}"
    return _dvc_comparison(a, b, root, unknown)


def _mlflow_side(ref: str, root: Path) -> _Side | None:
    try:
        record = find_run(root, ref) or find_pipeline(root, ref)
    except FileNotFoundError:  # no MLflow store: only DVC revisions can be compared
        return None
    except StoreError as error:
        raise LineageError(str(error)) from None
    if isinstance(record, PipelineRecord):
        label = f"pipeline run {record.run_id} ({record.fingerprint}, commit {record.commit[:12]})"
        return _Side(label, record.params, pipeline_metrics(record))
    if isinstance(record, StageRecord):
        label = f"stage run {record.run_id} ({record.stage}, pipeline {record.fingerprint})"
        return _Side(label, record.params, record.metrics)
    return None


def pipeline_metrics(pipeline: PipelineRecord) -> dict[str, float]:
    """`stage/metric` for the latest finished run of each stage of the pipeline run."""
    latest: dict[str, StageRecord] = {}
    for stage in pipeline.stages:  # newest first
        if stage.status == "FINISHED":
            latest.setdefault(stage.stage, stage)
    return {f"{name}/{key}": value for name, stage in latest.items() for key, value in stage.metrics.items()}


def _differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> tuple[Difference, ...]:
    return tuple(
        Difference(key, a.get(key), b.get(key)) for key in sorted(a.keys() | b.keys()) if a.get(key) != b.get(key)
    )


def _dvc_comparison(a: str, b: str, root: Path, unknown: str) -> Comparison:
    """`dvc exp diff A B` through DVC's Python API: params and metrics files as each revision committed them.
    A name that is no revision raises LineageError("<name>: <unknown>")."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo
    from dvc.scm import resolve_rev

    def resolve(repo: Repo, ref: str) -> str:
        try:
            return resolve_rev(repo.scm, ref)
        except DvcException:
            raise LineageError(f"{ref}: {unknown}") from None

    try:
        with Repo(os.fspath(root)) as repo:
            rev_a, rev_b = resolve(repo, a), resolve(repo, b)
            diff = repo.experiments.diff(a_rev=rev_a, b_rev=rev_b)
    except DvcException as error:
        raise LineageError(f"{root}: dvc exp diff {a} {b} failed: {error}") from None
    return Comparison(
        a=f"DVC revision {a} ({rev_a[:12]})",
        b=f"DVC revision {b} ({rev_b[:12]})",
        params=_dvc_differences(diff.get("params", {})),
        metrics=_dvc_differences(diff.get("metrics", {})),
    )


def _dvc_differences(diff: Mapping[str, Mapping[str, Mapping]]) -> tuple[Difference, ...]:
    """DVC's {file: {key: {"old", "new"}}} as `file:key` differences."""
    return tuple(
        Difference(f"{file}:{key}" if key else file, change.get("old"), change.get("new"))
        for file, changes in sorted(diff.items())
        for key, change in sorted(changes.items())
    )


def format_comparison(comparison: Comparison) -> str:
    """Two aligned columns per section, or one line saying nothing differs."""
    lines = [f"A: {comparison.a}", f"B: {comparison.b}"]
    if not comparison.params and not comparison.metrics:
        return "\n".join([*lines, "no param or metric differs"])
    for title, differences in (("params", comparison.params), ("metrics", comparison.metrics)):
        if not differences:
            lines.append(f"no {title} differ")
            continue
        key_width = max(len(d.key) for d in differences)
        a_width = max(len(_value(d.a)) for d in differences)
        lines += ["", f"{title} that differ:", f"  {'':<{key_width}}  {'A':<{a_width}}  B"]
        lines += [f"  {d.key:<{key_width}}  {_value(d.a):<{a_width}}  {_value(d.b)}" for d in differences]
    return "\n".join(lines)


def _value(value: Any) -> str:
    return "-" if value is None else str(value)
