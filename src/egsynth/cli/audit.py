"""Commands that audit lineage: lineage, runs, compare. They read dvc.yaml, dvc.lock and MLflow, and run no stage."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from egsynth import lineage, run_history
from egsynth.cli._app import app, fail, in_range
from egsynth.lineage import LineageError

MAX_RUNS = 1000  # `runs --limit`: more would read the whole store into memory for a table nobody reads
FLAGGED_EXIT = 1  # the chain was traced but is not to be trusted; user errors exit 2 (`fail`)


@app.command("lineage")
def lineage_command(
    path: Annotated[
        Path, typer.Argument(help="A DVC out or a file inside one: a model, a metrics file, a report, a dataset file.")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the chain as JSON instead of text.")] = False,
) -> None:
    """Trace PATH back to the raw data: each stage's MLflow run, git commit, params, and the md5 of its deps and
    outs, checked against the files on disk.

    Exits 1 when a file in the chain differs from dvc.lock or a stage has no MLflow run recording its outs.
    """
    try:
        traced = lineage.trace(path)
    except LineageError as error:
        fail(str(error))
    typer.echo(json.dumps(lineage.lineage_json(traced), indent=2) if as_json else lineage.format_lineage(traced))
    if traced.problems:
        raise typer.Exit(code=FLAGGED_EXIT)


@app.command("runs")
def runs_command(
    limit: Annotated[int, typer.Option(help=f"How many pipeline runs to show (at most {MAX_RUNS}).")] = 5,
    metric: Annotated[
        list[str] | None,
        typer.Option(help="A key metric to show, by its last name (repeatable). Default: psnr, miou, kept."),
    ] = None,
) -> None:
    """Recent pipeline runs (one per git commit + params), newest first, with their stage runs' key metrics."""
    in_range("--limit", limit, 1, MAX_RUNS)
    try:
        pipelines = run_history.recent_runs(limit)
    except LineageError as error:
        fail(str(error))
    typer.echo(run_history.format_runs(pipelines, metric or run_history.DEFAULT_KEY_METRICS))


@app.command("compare")
def compare_command(
    a: Annotated[str, typer.Argument(help="An MLflow run id, a pipeline fingerprint, a DVC experiment or a git rev.")],
    b: Annotated[str, typer.Argument(help="The same kind of thing as A.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the differences as JSON instead of text.")] = False,
) -> None:
    """Print the params and metrics that differ between two MLflow runs or two DVC experiments, nothing else."""
    try:
        comparison = run_history.compare(a, b)
    except LineageError as error:
        fail(str(error))
    typer.echo(
        json.dumps(asdict(comparison), indent=2, default=str) if as_json else run_history.format_comparison(comparison)
    )
