"""Checks of a user's command that need no model: made before torch is imported, so a request that is refused
(an output that would overwrite an input, an image too large, a count out of range) costs neither the seconds
nor the memory (about 1 GB for the CUDA build of torch) of loading a generator."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from egsynth.io import DEFAULT_MAX_IMAGE_SIDE, BadInput, check_outputs

ATTENTION_ARRAYS = "attention.npz"
"""`write_attention_maps`' raw maps: alpha_i [K, H2_i, W2_i], gate_i [K], beta_i [K, H1_i, W1_i] per scale i."""

DEFAULT_STEPS = 5
"""Style interpolation outputs when neither a number of steps nor a single t is given."""

MAX_STEPS = 100
"""Most style interpolation outputs one command writes (each is a generator pass)."""

MAX_POSITIONS = 100
"""Most random patch positions of an extrapolation (each is a generator pass; the paper uses 10)."""

DEFAULT_MAX_SIDE = DEFAULT_MAX_IMAGE_SIDE
"""Largest image side the commands read by default. The generator's memory grows with the pixels: with the
default params' generator on the CPU a synthesis peaked at 1.2 GB for 256x256 and 2.0 GB for 512x512, about
4 KB a pixel, so 1024x1024 needs about 5 GB and 2048x2048 about 17 GB."""

MAX_SIDE_LIMIT = 16384
"""Largest `max_side` accepted at all (Pillow refuses larger images as decompression bombs)."""

ATTENTION_FIGURE = re.compile(r"attention_scale\d+\.png")
"""`write_attention_maps`' figures, one per scale."""


class InputError(BadInput):
    """A user's file that cannot be used; the message names the file and the problem."""


def _file_in_the_way(directory: Path) -> Path | None:
    """The existing non-directory at `directory` or above it, which stops files being written there."""
    existing = next((p for p in (directory, *directory.parents) if p.exists()), None)
    return None if existing is None or existing.is_dir() else existing


def check_output(path: Path) -> None:
    """Refuse, before any work, an output path the final rename could not take (or would delete: a directory)."""
    if path.suffix.lower() != ".png":
        raise InputError(f"{path}: outputs are PNG images; give a path ending in .png")
    if path.is_dir():
        raise InputError(f"{path}: is a directory; give the path of a PNG file")
    blocking = _file_in_the_way(path.parent)
    if blocking is not None:
        raise InputError(f"{path}: {blocking} is a file, not a directory")


def check_output_directory(path: Path) -> None:
    """Refuse, before any work, a directory to write into where a file stands."""
    blocking = _file_in_the_way(path)
    if blocking is not None:
        raise InputError(f"{path}: {'it' if blocking == path else blocking} is a file, not a directory")


def check_safe_outputs(
    outputs: Iterable[Path], inputs: Iterable[Path | None], *, attention: Path | None = None
) -> None:
    """Refuse, before any work, outputs that would overwrite an input or a file DVC tracks, and an attention
    directory inside a DVC out or holding an input under the name of a file it gets."""
    given = [path for path in inputs if path is not None]
    check_outputs(outputs, given)
    if attention is not None:
        check_outputs([attention], [])
        for path in given:
            if path.parent.resolve() == attention.resolve() and (
                ATTENTION_FIGURE.fullmatch(path.name) or path.name == ATTENTION_ARRAYS
            ):
                raise InputError(f"{attention}: --attention would overwrite the input {path}; give another directory")


def interpolation_paths(output: Path, steps: int) -> list[Path]:
    """Where the `steps` outputs of a style interpolation go: OUT_00.png, OUT_01.png, ... next to OUT.png."""
    width = max(2, len(str(steps - 1)))
    return [output.with_name(f"{output.stem}_{i:0{width}d}{output.suffix}") for i in range(steps)]


def interpolation_factors(steps: int | None, t: float | None) -> list[float]:
    """The t of each output: `steps` (default DEFAULT_STEPS) evenly from 0 to 1, both ends included, or one `t`."""
    if steps is not None and t is not None:
        raise InputError("give --steps or --t, not both")
    if t is not None:
        if not 0.0 <= t <= 1.0:
            raise InputError(f"--t {t}: the interpolation factor must lie in [0, 1]")
        return [t]
    steps = DEFAULT_STEPS if steps is None else steps
    if not 2 <= steps <= MAX_STEPS:
        raise InputError(f"--steps {steps}: needs at least 2 (t = 0 and t = 1) and at most {MAX_STEPS}")
    return np.linspace(0.0, 1.0, steps).tolist()
