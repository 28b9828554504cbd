"""Commands that run a trained generator on the user's files: synthesize, interpolate, extrapolate.

The work is `egsynth.synthesis`; these only parse options and print what was written. It is imported
inside each command, so that `egsynth --help` does not load torch.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from egsynth import user_input
from egsynth.cli._app import app, fail, in_range
from egsynth.io import DEFAULT_MAX_IMAGE_SIDE, BadInput, check_image_file

DEFAULT_MODEL = Path("models/full/generator.pt")
DEFAULT_PARSER = Path("models/parser.pt")

LabelOption = Annotated[
    Path, typer.Option("--label", help="Target label map c1: a PNG of COCO-stuff label values (id - 1, 255 unlabeled).")
]
OutputOption = Annotated[Path, typer.Option("-o", "--output", help="PNG to write (replaced only on success).")]
ModelOption = Annotated[Path, typer.Option(help="Generator file written by the train stage.")]
ParserOption = Annotated[
    Path, typer.Option(help="Label parser that parses an exemplar given without its label map (the parser stage's).")
]
ExemplarLabelOption = Annotated[
    Path | None, typer.Option(help="The exemplar's label map c̃2, of its size (default: parsed by --parser).")
]
DeviceOption = Annotated[
    str | None, typer.Option(help="Torch device, e.g. cpu, cuda, cuda:1 (default: cuda if available, else cpu).")
]
MaxSideOption = Annotated[
    int,
    typer.Option(help="Refuse images larger than this many px on a side, from their header (memory grows with them)."),
]


@contextmanager
def _reported() -> Iterator[None]:
    """A bad input becomes one line naming the file and the problem, and exit status 2."""
    try:
        yield
    except BadInput as error:
        fail(str(error))


def _check_inputs(
    images: list[Path | None], *, exemplars: list[tuple[Path, Path | None]], parser: Path, max_side: int
) -> None:
    """Refuse, before the model loads, images that are missing, unreadable or too large (from their headers)
    and a parser file that an exemplar given without its label map needs but that is missing."""

    in_range("--max-side", max_side, 8, user_input.MAX_SIDE_LIMIT)
    for path in images:
        if path is not None:
            check_image_file(path, max_side=max_side)
    unlabeled = [exemplar for exemplar, labels in exemplars if labels is None]
    if unlabeled and not parser.is_file():
        raise user_input.InputError(
            f"{parser}: parser weights file not found; it is needed to parse {unlabeled[0]}, given without a label map"
        )


def _size(pixels: np.ndarray) -> str:
    """Width x height of an image array [H, W, 3]."""
    return f"{pixels.shape[1]}x{pixels.shape[0]}"


@app.command()
def synthesize(
    label: LabelOption,
    exemplar: Annotated[Path, typer.Option(help="Exemplar photo x2 whose style to paint with (8-bit RGB).")],
    output: OutputOption,
    exemplar_label: ExemplarLabelOption = None,
    attention: Annotated[
        Path | None,
        typer.Option(help="Also write the MSCA attention maps of every scale (Fig. 6) into this directory."),
    ] = None,
    model: ModelOption = DEFAULT_MODEL,
    parser: ParserOption = DEFAULT_PARSER,
    device: DeviceOption = None,
    max_side: MaxSideOption = DEFAULT_MAX_IMAGE_SIDE,
) -> None:
    """Paint a label map in the style of an exemplar photo; the output has the label map's size.

    The image and, with --attention, the maps are written together: on any error, none of them.
    """
    with _reported():
        user_input.check_output(output)
        if attention is not None:
            user_input.check_output_directory(attention)
        inputs = [label, exemplar, exemplar_label, model, parser]
        user_input.check_safe_outputs([output], inputs, attention=attention)
        _check_inputs(
            [label, exemplar, exemplar_label], exemplars=[(exemplar, exemplar_label)], parser=parser, max_side=max_side
        )
        from egsynth import synthesis  # torch loads only for a request that passed the checks

        synthesizer = synthesis.Synthesizer(model, parser=parser, device=synthesis.resolve_device(device))
        if attention is not None:
            synthesizer.check_attention_maps()
        target = synthesizer.read_target(label)
        style = synthesizer.read_exemplar(exemplar, exemplar_label)
        pixels, records = synthesizer.synthesize(target, style)
        written = synthesis.write_outputs({output: pixels}, attention, target=target, exemplar=style, records=records)
    typer.echo(f"wrote {output} ({_size(pixels)}): {label} in the style of {exemplar}")
    for path in written[1:]:
        typer.echo(f"wrote {path}")


@app.command()
def interpolate(
    label: LabelOption,
    exemplar_a: Annotated[Path, typer.Option(help="Exemplar A: the style at t = 0 (with --spatial: on the left).")],
    exemplar_b: Annotated[Path, typer.Option(help="Exemplar B: the style at t = 1 (with --spatial: on the right).")],
    output: Annotated[
        Path,
        typer.Option("-o", "--output", help="PNG to write; with --steps N, OUT_00.png ... beside it, one per t."),
    ],
    exemplar_a_label: Annotated[Path | None, typer.Option(help="Exemplar A's label map (default: parsed).")] = None,
    exemplar_b_label: Annotated[Path | None, typer.Option(help="Exemplar B's label map (default: parsed).")] = None,
    steps: Annotated[
        int | None, typer.Option(help="Outputs at t = 0 ... 1, evenly spaced, ends included (default 5, at most 100).")
    ] = None,
    t: Annotated[float | None, typer.Option("--t", help="One output at this t in [0, 1] instead of --steps.")] = None,
    spatial: Annotated[
        bool,
        typer.Option("--spatial", help="One output whose style goes from A on the left to B on the right (Fig. 7)."),
    ] = False,
    model: ModelOption = DEFAULT_MODEL,
    parser: ParserOption = DEFAULT_PARSER,
    device: DeviceOption = None,
    max_side: MaxSideOption = DEFAULT_MAX_IMAGE_SIDE,
) -> None:
    """Interpolate between two exemplars' styles (Sec. 4, Fig. 5), or left to right across the image (Fig. 7).

    t = 0 gives the output of `synthesize` with exemplar A, t = 1 with exemplar B. The outputs are written
    together: on any error, or when killed, none of them.
    """
    with _reported():
        if spatial:
            if steps is not None or t is not None:
                raise user_input.InputError("--spatial writes one image; it takes no --steps or --t")
            ts, paths = [], [output]
        else:
            ts = user_input.interpolation_factors(steps, t)
            paths = [output] if t is not None else user_input.interpolation_paths(output, len(ts))
        for path in paths:
            user_input.check_output(path)
        labels = [exemplar_a_label, exemplar_b_label]
        user_input.check_safe_outputs(paths, [label, exemplar_a, exemplar_b, *labels, model, parser])
        _check_inputs(
            [label, exemplar_a, exemplar_b, *labels],
            exemplars=[(exemplar_a, exemplar_a_label), (exemplar_b, exemplar_b_label)],
            parser=parser,
            max_side=max_side,
        )
        from egsynth import synthesis  # torch loads only for a request that passed the checks

        synthesizer = synthesis.Synthesizer(model, parser=parser, device=synthesis.resolve_device(device))
        target = synthesizer.read_target(label)
        a = synthesizer.read_exemplar(exemplar_a, exemplar_a_label)
        b = synthesizer.read_exemplar(exemplar_b, exemplar_b_label)
        if spatial:
            images = [synthesizer.interpolate_spatial(target, a, b)]
        else:
            images = synthesizer.interpolate(target, a, b, ts)
        synthesis.write_pngs(dict(zip(paths, images, strict=True)))
    for i, (path, image) in enumerate(zip(paths, images, strict=True)):
        typer.echo(f"wrote {path} ({_size(image)}): " + ("A left, B right" if spatial else f"t = {ts[i]:g}"))


@app.command()
def extrapolate(
    label: Annotated[
        Path, typer.Option("--label", help="The large target label map c1 (COCO-stuff label values, 255 unlabeled).")
    ],
    exemplar: Annotated[Path, typer.Option(help="Exemplar patch x2 whose style to extend (8-bit RGB).")],
    output: OutputOption,
    exemplar_label: ExemplarLabelOption = None,
    patch: Annotated[
        int | None, typer.Option(help="Side of the square patches synthesized (default: the exemplar's shorter side).")
    ] = None,
    positions: Annotated[
        int, typer.Option(help="Random patch positions besides the four corners (paper: 10; at most 100).")
    ] = 10,
    seed: Annotated[int, typer.Option(help="Seed of the random patch positions (0 to 2^32 - 1).")] = 0,
    model: ModelOption = DEFAULT_MODEL,
    parser: ParserOption = DEFAULT_PARSER,
    device: DeviceOption = None,
    max_side: MaxSideOption = DEFAULT_MAX_IMAGE_SIDE,
) -> None:
    """Extrapolate a label map larger than the exemplar from overlapping, blended patches (Fig. 8)."""
    with _reported():
        in_range("--positions", positions, 0, user_input.MAX_POSITIONS)
        in_range("--seed", seed, 0, 2**32 - 1)
        user_input.check_output(output)
        user_input.check_safe_outputs([output], [label, exemplar, exemplar_label, model, parser])
        _check_inputs(
            [label, exemplar, exemplar_label], exemplars=[(exemplar, exemplar_label)], parser=parser, max_side=max_side
        )
        from egsynth import synthesis  # torch loads only for a request that passed the checks

        synthesizer = synthesis.Synthesizer(model, parser=parser, device=synthesis.resolve_device(device))
        target = synthesizer.read_target(label)
        style = synthesizer.read_exemplar(exemplar, exemplar_label)
        pixels = synthesizer.extrapolate(target, style, patch=patch, num_random=positions, seed=seed)
        synthesis.write_pngs({output: pixels})
    typer.echo(f"wrote {output} ({_size(pixels)}): {label} extrapolated from {exemplar}")
