"""The typer app every command module registers on, and the one way a command reports a user error."""

from __future__ import annotations

from typing import NoReturn

import typer

app = typer.Typer(
    help="The `egsynth` command line: tools around the pipeline's data and models.\n\n"
    "Every user error ends in one line naming the file and the problem, and a non-zero exit.",
    no_args_is_help=True,
    add_completion=False,
)


def fail(message: str) -> NoReturn:
    """One red line on stderr, exit status 2, no traceback."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code=2)


def in_range(option: str, value: int, low: int, high: int) -> int:
    """`value` when `low <= value <= high`, else one error line naming `option`: every count a user types is
    bounded, so that no typo runs for hours or exhausts the machine."""
    if not low <= value <= high:
        fail(f"{option} {value}: must lie between {low} and {high}")
    return value
