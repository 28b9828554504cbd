"""`egsynth demo`: the web page of `egsynth.demo` on the trained models. The web server and torch are imported
inside the command, so that `egsynth --help` stays fast and works without the `demo` extra."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Annotated

import typer

from egsynth.cli._app import app, fail, in_range
from egsynth.cli.synthesis import (
    DEFAULT_MODEL,
    DEFAULT_PARSER,
    DeviceOption,
    ModelOption,
    ParserOption,
    _reported,
)


def _check_port(host: str, port: int) -> None:
    """One error line, before any model loads, when the address cannot be served."""
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as error:
        fail(f"--host {host} --port {port}: cannot serve there ({error.strerror or error})")


@app.command()
def demo(
    model: ModelOption = DEFAULT_MODEL,
    models: Annotated[
        Path, typer.Option(help="Where the page's model picker looks for VARIANT/generator.pt files.")
    ] = Path("models"),
    eval_dir: Annotated[
        Path, typer.Option(help="The tasks stage's cases, whose scenes the page offers (duplicating/ID/).")
    ] = Path("data/eval"),
    parser: ParserOption = DEFAULT_PARSER,
    port: Annotated[int, typer.Option(help="Port to serve the page on.")] = 7860,
    host: Annotated[
        str, typer.Option(help="Address to serve on (0.0.0.0: every interface, not only this machine).")
    ] = "127.0.0.1",
    device: DeviceOption = None,
) -> None:
    """Serve a web page that paints a label map in a photo's style and shows where each output pixel's style came
    from (the MSCA attention of every scale). Uploads are checked as the CLI checks files; Ctrl+C stops it."""
    try:
        from egsynth.demo import core, server
    except ModuleNotFoundError as error:
        fail(f"the demo needs its web server ({error.name} is missing): pip install -e '.[demo]'")
    from egsynth import synthesis

    in_range("--port", port, 1, 65535)
    _check_port(host, port)
    with _reported():
        choices, default = core.list_models(models, model)
        page = core.Demo(
            models=choices,
            default_model=default,
            parser=parser,
            scenes=core.list_scenes(eval_dir),
            device=synthesis.resolve_device(device),
        )
    typer.echo(
        f"serving http://{host}:{port} with {len(page.models)} models and {len(page.scenes)} scenes "
        f"(default model {model}); Ctrl+C stops"
    )
    server.serve(page, host=host, port=port)
