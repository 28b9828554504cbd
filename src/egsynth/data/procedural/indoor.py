"""Indoor layouts: a one-point-perspective room with a window, a rug, furniture and a few things."""

from __future__ import annotations

import numpy as np

from egsynth.data.procedural.geometry import (
    Box,
    Layout,
    Part,
    Polygon,
    Region,
    ground_quad,
    perspective,
    simple_region,
)
from egsynth.data.procedural.things import THING_KINDS, thing_region


def _window(rng: np.random.Generator, x0: float, y0: float, x1: float, y1: float) -> list[Region]:
    """A window in the back wall (x0, y0, x1, y1): panes showing the sky, a frame, maybe curtains."""
    middle = (x0 + x1) / 2
    left, right = rng.uniform(x0 + 0.03, middle - 0.08), rng.uniform(middle + 0.04, x1 - 0.03)
    top, bottom = y0 + (y1 - y0) * rng.uniform(0.1, 0.25), y0 + (y1 - y0) * rng.uniform(0.55, 0.75)
    frame = 0.012
    mullion = (left + right) / 2
    parts = (
        Part("window-other/frame", Box(left, top, right, bottom)),
        Part("window-other", Box(left + frame, top + frame, right - frame, bottom - frame)),
        Part("window-other/frame", Box(mullion - frame / 2, top, mullion + frame / 2, bottom)),
    )
    regions = [Region("window-other", parts, 0.8)]
    if rng.random() < 0.7:
        width = (right - left) * rng.uniform(0.2, 0.35)
        drop = bottom + (y1 - bottom) * rng.uniform(0.3, 1.0)
        curtains = (
            Part("curtain", Box(left - width * 0.4, top - 0.02, left + width * 0.6, drop)),
            Part("curtain", Box(right - width * 0.6, top - 0.02, right + width * 0.4, drop)),
        )
        regions.append(Region("curtain", curtains, 0.0))
    return regions


def _table(rng: np.random.Generator, *, x: float, y_base: float, scale: float) -> Region:
    """A table seen slightly from above: top, front apron, two legs."""
    width, height = scale * rng.uniform(0.5, 0.8), scale * rng.uniform(0.3, 0.4)
    top = y_base - height
    inset = scale * 0.1  # the far edge of the top, foreshortened
    left, right = x - width / 2, x + width / 2
    parts = (
        Part("table/frame", Box(x - width * 0.45, top, x - width * 0.4, y_base)),
        Part("table/frame", Box(x + width * 0.4, top, x + width * 0.45, y_base)),
        Part(
            "table",
            Polygon(((left, top), (right, top), (right - inset, top - inset), (left + inset, top - inset))),
        ),
        Part("table/frame", Box(left, top, right, top + height * 0.08)),
    )
    return Region("table", parts, 0.0)


def sample_indoor(rng: np.random.Generator, seed: int) -> Layout:
    x0, x1 = rng.uniform(0.12, 0.32), rng.uniform(0.68, 0.88)  # the back wall
    y0, y1 = rng.uniform(0.1, 0.25), rng.uniform(0.6, 0.72)
    horizon = y0 + (y1 - y0) * rng.uniform(0.45, 0.7)
    vanishing_x = (x0 + x1) / 2
    wall = ("wall-other", "wall-other", "wall-brick", "wall-concrete", "wall-wood")[rng.integers(5)]
    floor = ("floor-wood", "floor-wood", "floor-tile", "carpet")[rng.integers(4)]
    walls = (
        Part(wall, Box(x0, y0, x1, y1)),
        Part(f"{wall}/side", Polygon(((0, 0), (x0, y0), (x0, y1), (0, 1)))),
        Part(f"{wall}/side", Polygon(((1, 0), (x1, y0), (x1, y1), (1, 1)))),
    )
    regions = [
        simple_region("ceiling-other", Polygon(((0, 0), (1, 0), (x1, y0), (x0, y0)))),
        Region(wall, walls, 0.0),
        simple_region(floor, Polygon(((0, 1), (x0, y1), (x1, y1), (1, 1)))),
    ]
    if rng.random() < 0.8:
        regions += _window(rng, x0, y0, x1, y1)
    if floor != "carpet" and rng.random() < 0.5:  # a rug: a rectangle on the floor plane
        z_near, z_far = 1 / (rng.uniform(0.85, 1.0) - horizon), 1 / (rng.uniform(y1 + 0.03, 0.8) - horizon)
        u0 = rng.uniform(-1.2, 0.2)
        regions.append(
            simple_region("carpet", ground_quad(horizon, vanishing_x, u0, u0 + rng.uniform(0.6, 1.2), z_far, z_near))
        )

    furniture: list[tuple[float, Region]] = []  # (y of its base, region), painted far to near
    if rng.random() < 0.6:
        y = rng.uniform(y1 + 0.03, 1.0)
        furniture.append((y, _table(rng, x=rng.uniform(0.2, 0.8), y_base=y, scale=perspective(y, horizon))))
    for _ in range(rng.integers(1, 4)):
        name = ("chair", "chair", "couch", "potted plant", "teddy bear", "person", "dog")[rng.integers(7)]
        y = rng.uniform(y1 + 0.03, 1.0)
        height = THING_KINDS[name].height * 1.6 * perspective(y, horizon)
        furniture.append((y, thing_region(name, rng, x=rng.uniform(0.1, 0.9), y=y, height=height, depth=0.0)))
    furniture.sort(key=lambda item: item[0])
    regions += [region for _, region in furniture]
    return Layout("indoor", seed, horizon, vanishing_x, tuple(regions))
