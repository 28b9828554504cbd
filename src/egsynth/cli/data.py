"""Commands on the pipeline's data and params: check-params, swap-truth, model-summary."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import typer
from PIL import Image

from egsynth.cli._app import app, fail
from egsynth.config import ParamsError, load_params
from egsynth.data import procedural
from egsynth.data.cocostuff import CocoStuffLayout
from egsynth.data.embedded import SIDECAR_NAME
from egsynth.io import DEFAULT_MAX_IMAGE_SIDE, BadInput, atomic_path, check_image_file, check_outputs


@app.command("check-params")
def check_params(
    path: Annotated[Path, typer.Argument(help="A whole params file, e.g. configs/paper.yaml.")] = Path("params.yaml"),
) -> None:
    """Validate a params file against the schema, as every stage does at its boundary."""
    try:
        load_params(path)
    except ParamsError as error:
        fail(str(error))
    typer.echo(f"{path}: valid")


@app.command("swap-truth")
def swap_truth(
    layout_of: Annotated[int, typer.Option(help="Image id whose layout (label map) to draw.")],
    style_of: Annotated[int, typer.Option(help="Image id whose style to draw it in.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="PNG to write.")],
    scenes: Annotated[Path, typer.Option(help="The embedded dataset (output of the scenes stage).")] = Path(
        "data/raw/scenes"
    ),
) -> None:
    """Render the exact ground truth of "scene A's layout in scene B's style" from the embedded dataset."""
    sidecar_path = scenes / SIDECAR_NAME
    if not sidecar_path.is_file():
        fail(f"{sidecar_path}: missing; it exists only for the embedded dataset (run `dvc repro scenes`)")
    sidecar = pd.read_parquet(sidecar_path).set_index("image_id")
    for image_id in (layout_of, style_of):
        if image_id not in sidecar.index:
            fail(f"{sidecar_path}: no image with id {image_id} (ids {sidecar.index.min()}-{sidecar.index.max()})")
    target, exemplar = sidecar.loc[layout_of], sidecar.loc[style_of]
    image_path = CocoStuffLayout(scenes).image_dir(target["split"]) / target["file_name"]
    if Path(os.path.realpath(output)).is_relative_to(os.path.realpath(scenes)):
        fail(f"{output}: is inside the dataset {scenes}, an input; write the output elsewhere")
    try:
        check_outputs([output], [sidecar_path, image_path])
        check_image_file(image_path, max_side=DEFAULT_MAX_IMAGE_SIDE)
    except BadInput as error:
        fail(str(error))
    with Image.open(image_path) as image:
        width, height = image.size
    layout = procedural.sample_layout(int(target["layout_seed"]), target["kind"])
    style = procedural.Style(vector=np.asarray(exemplar["style"], dtype=np.float32))
    pixels = procedural.render(layout, style, int(target["texture_seed"]), height, width)
    with atomic_path(output) as staging:
        Image.fromarray(pixels).save(staging, format="PNG")
    typer.echo(f"wrote {output} ({width}x{height}): layout of {layout_of}, style of {style_of}")


@app.command("model-summary")
def model_summary(
    params: Annotated[Path, typer.Option(help="Params file whose `model` section to build.")] = Path("params.yaml"),
) -> None:
    """Trainable parameters per component of every generator variant (the frozen VGG-19 apart)."""
    from egsynth.models.generator import build_generator, parameter_counts
    from egsynth.models.variants import VARIANTS

    try:
        config = load_params(params).model
    except ParamsError as error:
        fail(str(error))
    counting = config.model_copy(update={"backbone": "random"})  # weights do not change the counts
    rows = {variant: parameter_counts(build_generator(variant, counting)) for variant in VARIANTS}
    components = list(dict.fromkeys(name for counts in rows.values() for name in counts))
    typer.echo(f"{params}: L = {config.num_scales}, K = {list(config.attention_maps)}, ngf = {config.ngf}")
    typer.echo("| variant | " + " | ".join(components) + " |")
    typer.echo("|---" * (len(components) + 1) + "|")
    for variant, counts in rows.items():
        cells = [f"{counts[name]:,}" if name in counts else "-" for name in components]
        typer.echo(f"| {variant} | " + " | ".join(cells) + " |")
