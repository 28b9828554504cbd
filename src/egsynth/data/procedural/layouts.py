"""Layout sampling: the scene kinds, object-centric layouts (one thing filling most of the frame) and
`sample_layout`, which picks the sampler of a kind."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from egsynth.data.procedural.geometry import Box, Layout, paint, ridge_band, simple_region
from egsynth.data.procedural.indoor import sample_indoor
from egsynth.data.procedural.outdoor import sample_outdoor
from egsynth.data.procedural.style import LAYOUT_STREAM
from egsynth.data.procedural.things import PORTRAITS, THING_KINDS, thing_region

SCENE_KINDS = ("outdoor", "indoor", "object")

_OBJECT_BACKGROUNDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # thing: (backdrop classes, floor classes)
    "teddy bear": (("wall-other", "wall-brick"), ("floor-wood", "carpet", "table")),
    "dog": (("sky-other", "bush", "tree"), ("grass", "dirt")),
    "elephant": (("sky-other", "tree"), ("grass", "dirt")),
    "car": (("sky-other", "tree", "wall-brick"), ("road", "pavement")),
    "horse": (("sky-other", "tree"), ("grass", "dirt")),
    "cow": (("sky-other", "hill"), ("grass",)),
    "sheep": (("sky-other", "hill"), ("grass",)),
    "potted plant": (("wall-other", "wall-concrete"), ("table", "floor-wood")),
}

_OBJECT_COVERAGE = 0.58  # the thing covers at least this fraction of the frame (checked at 48x48)


def _sample_object(rng: np.random.Generator, seed: int) -> Layout:
    names = list(_OBJECT_BACKGROUNDS)
    name = names[rng.integers(len(names))]
    backdrops, floors = _OBJECT_BACKGROUNDS[name]
    backdrop, floor = backdrops[rng.integers(len(backdrops))], floors[rng.integers(len(floors))]
    horizon = rng.uniform(0.45, 0.75)
    floor_edge = ridge_band(rng, base=horizon, amplitude=0.02, first_cells=2, octaves=2, persistence=0.5)
    background = (simple_region(backdrop, Box(0, 0, 1, 1), 0.3), simple_region(floor, floor_edge, on_ground=True))
    portrait = name in PORTRAITS
    kind = PORTRAITS[name] if portrait else THING_KINDS[name]
    height = min(0.9, 0.9 / kind.aspect)
    x, y = rng.uniform(0.45, 0.55), rng.uniform(0.5, 0.6)
    state = rng.bit_generator.state
    for _ in range(8):  # zoom in on the thing (same shape, same random draws) until it covers enough
        rng.bit_generator.state = state
        thing = thing_region(name, rng, x=x, y=y, height=height, depth=0.0, anchor=kind.focus, portrait=portrait)
        coverage = (paint.__wrapped__((thing,), 48, 48).unit_map >= 0).mean()  # uncached
        if coverage >= _OBJECT_COVERAGE:
            break
        height *= math.sqrt(_OBJECT_COVERAGE / max(coverage, 0.05)) * 1.05
    return Layout("object", seed, horizon, 0.5, (*background, thing))


_SAMPLERS: dict[str, Callable[[np.random.Generator, int], Layout]] = {
    "outdoor": sample_outdoor,
    "indoor": sample_indoor,
    "object": _sample_object,
}


def sample_layout(seed: int, kind: str) -> Layout:
    """A random plausible layout of this kind (see SCENE_KINDS), deterministic in (seed, kind)."""
    if kind not in _SAMPLERS:
        raise ValueError(f"unknown scene kind {kind!r}; known: {SCENE_KINDS}")
    rng = np.random.default_rng([seed, LAYOUT_STREAM, SCENE_KINDS.index(kind)])
    return _SAMPLERS[kind](rng, seed)
