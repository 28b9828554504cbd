"""`egsynth ablation collect`: the ablation study's columns, gathered from DVC experiments for the report stage.

The work is `egsynth.evaluation.ablation.collect`, imported inside the command so that `egsynth --help` does not
load torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from egsynth import provenance
from egsynth.cli._app import app, fail
from egsynth.io import BadInput, check_outputs, write_json_atomic

ablation_app = typer.Typer(
    help="The ablation study (Table 1's variants), trained as DVC experiments and shown by the report stage.",
    no_args_is_help=True,
)
app.add_typer(ablation_app, name="ablation")


def _seed_labels(given: list[str], experiments: list[str]) -> dict[str, str]:
    """`EXP=LABEL` options as experiment -> label."""
    labels = {}
    for option in given:
        experiment, equals, label = option.partition("=")
        if not equals or not experiment or not label.strip():
            fail(f"--seed-label {option!r}: expected EXP=LABEL, e.g. 'seed1=seed 1'")
        if experiment in labels:
            fail(f"--seed-label {experiment}: given twice")
        labels[experiment] = label.strip()
    return labels


@ablation_app.command("collect")
def collect_command(
    experiments: Annotated[
        list[str], typer.Argument(help="DVC experiment names, as `dvc exp run -n NAME` named them.", show_default=False)
    ],
    output: Annotated[
        Path,
        typer.Option("-o", "--output", help="JSON to write; the report stage reads reports/ablation/metrics.json."),
    ],
    seed_label: Annotated[
        list[str] | None,
        typer.Option(
            help="EXP=LABEL: EXP's models become the columns 'MODEL (LABEL)', beside the others' (repeatable)."
        ),
    ] = None,
) -> None:
    """Read reports/metrics.json and params.yaml from each experiment's commit into one file: its commit and
    params, and every model's metrics. Reads git only: no checkout, nothing written but the output."""
    from egsynth.evaluation.ablation import CollectError, collect

    labels = _seed_labels(seed_label or [], experiments)
    try:
        root = provenance.find_repo_root()
        check_outputs([output], [])
        collected = collect(root, experiments, labels)
    except (FileNotFoundError, BadInput, CollectError) as error:
        fail(str(error))
    write_json_atomic(output, collected)
    sources = ", ".join(f"{name} ({entry['commit'][:12]})" for name, entry in collected["experiments"].items())
    typer.echo(f"wrote {output}: {len(collected['models'])} models from {sources}")
