"""Outdoor layouts: a biome's sky, land forms, ground, water, roads and what stands on them."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from egsynth.data.procedural.geometry import (
    Band,
    Blob,
    Box,
    Layout,
    Part,
    Polygon,
    Region,
    Strip,
    ground_depth,
    outline_waves,
    perspective,
    ridge_band,
    simple_region,
)
from egsynth.data.procedural.things import THING_KINDS, thing_region


@dataclass(frozen=True)
class _Biome:
    """What an outdoor scene of one kind may hold: probabilities, or maximum counts."""

    weight: float  # share of outdoor scenes
    grounds: tuple[str, ...]  # main ground class, one picked
    animals: tuple[str, ...]  # things that may stand on the ground (boats on the sea)
    mountains: float = 0.0
    hills: float = 0.0
    sea: float = 0.0  # sea at the horizon, the ground becomes its shore
    river: float = 0.0
    road: float = 0.0
    treeline: float = 0.0  # a distant forest edge
    trees: int = 0
    conifers: float = 0.0  # fraction of conifers among the trees
    bushes: int = 0
    rocks: int = 0
    flowers: float = 0.0
    house: float = 0.0
    fence: float = 0.0
    fog: float = 0.0


# fmt: off
_BIOMES: dict[str, _Biome] = {
    "meadow": _Biome(0.3, ("grass",), ("cow", "sheep", "horse", "person", "dog"), mountains=0.3, hills=0.8,
                     river=0.3, road=0.1, treeline=0.5, trees=6, conifers=0.2, bushes=4, rocks=1, flowers=0.5,
                     house=0.3, fence=0.3, fog=0.15),
    "coast": _Biome(0.2, ("sand",), ("person", "dog", "boat"), mountains=0.3, hills=0.5, sea=1.0,
                    treeline=0.2, trees=2, conifers=0.3, bushes=2, rocks=3, house=0.15, fence=0.1, fog=0.1),
    "alpine": _Biome(0.14, ("grass", "grass", "snow", "rock"), ("sheep", "cow", "horse", "person"),
                     mountains=1.0, hills=0.4, river=0.4, treeline=0.8, trees=4, conifers=0.9, bushes=2,
                     rocks=3, flowers=0.2, house=0.15, fence=0.1, fog=0.3),
    "winter": _Biome(0.1, ("snow",), ("person", "dog", "horse"), mountains=0.6, hills=0.7, river=0.2,
                     road=0.1, treeline=0.6, trees=5, conifers=0.6, bushes=2, rocks=1, house=0.3, fence=0.4,
                     fog=0.3),
    "road": _Biome(0.12, ("grass", "dirt"), ("car", "person", "dog", "cow"), mountains=0.3, hills=0.6,
                   road=1.0, treeline=0.5, trees=5, conifers=0.3, bushes=3, rocks=1, flowers=0.2, house=0.4,
                   fence=0.5, fog=0.1),
    "field": _Biome(0.08, ("playingfield",), ("person", "person", "person", "dog"), mountains=0.1, hills=0.4,
                    treeline=0.8, trees=3, conifers=0.2, bushes=2, house=0.1, fence=0.6, fog=0.05),
    "desert": _Biome(0.06, ("dirt", "sand", "gravel"), ("horse", "person", "elephant", "cow"), mountains=0.6,
                     hills=0.8, road=0.2, trees=1, bushes=3, rocks=4, house=0.1, fence=0.1, fog=0.1),
}
# fmt: on

_NEAR_GROUNDS = {
    "grass": ("dirt", "gravel", "grass"),
    "snow": ("snow",),
    "sand": ("sand",),
    "dirt": ("gravel",),
    "gravel": ("dirt",),
    "rock": ("grass",),
    "playingfield": ("playingfield",),
}


def _clouds(rng: np.random.Generator, horizon: float) -> Region:
    """A cumulus (a few blobs on a flat base) or a thin stratus streak."""
    cx = rng.uniform(-0.05, 1.05)
    cy = rng.uniform(0.06, max(horizon - 0.14, 0.08))
    if rng.random() < 0.3:
        rx = rng.uniform(0.15, 0.4)
        stratus = Blob(cx, cy, rx, rx * rng.uniform(0.08, 0.16), outline_waves(rng, 0.15))
        return simple_region("clouds", stratus, 0.9)
    size = rng.uniform(0.05, 0.12)
    base = cy + size * 0.35
    parts = []
    for _ in range(rng.integers(2, 6)):
        dx, r = rng.uniform(-1.6, 1.6), rng.uniform(0.6, 1.2)
        puff = Blob(
            cx + dx * size, cy - abs(dx) * size * 0.3, r * size, r * size * 0.75, outline_waves(rng, 0.12), base
        )
        parts.append(Part("clouds", puff))
    return Region("clouds", tuple(parts), 0.9)


def _skyline(rng: np.random.Generator, biome: _Biome, horizon: float) -> list[Region]:
    """Sky, clouds and what rises above the horizon: mountains, hills, fog, a distant forest edge."""
    regions = [simple_region("sky-other", Box(0, 0, 1, 1), 1.0)]
    regions += [_clouds(rng, horizon) for _ in range(rng.integers(0, 5))]
    if rng.random() < biome.mountains:
        for layer in range(rng.integers(1, 3)):
            amplitude = min(rng.uniform(0.12, 0.32), horizon - 0.08) / (1 + 0.6 * layer)
            base = horizon - rng.uniform(0.0, 0.04)
            ridge = ridge_band(
                rng, base=base, amplitude=amplitude, first_cells=2, octaves=6, persistence=0.5, peakiness=1.4
            )
            regions.append(simple_region("mountain", ridge, 0.9 - 0.12 * layer))
    lower_ridges = (  # name, probability, amplitude range, first_cells, octaves, persistence, depth
        ("hill", biome.hills, (0.03, 0.12), 2, 3, 0.4, 0.65),
        ("fog", biome.fog, (0.03, 0.08), 3, 3, 0.5, 0.95),
        ("tree", biome.treeline, (0.02, 0.05), 24, 3, 0.6, 0.7),
    )
    for name, probability, amplitude, first_cells, octaves, persistence, depth in lower_ridges:
        if rng.random() < probability:
            ridge = ridge_band(
                rng,
                base=horizon + 0.005,
                amplitude=rng.uniform(*amplitude),
                first_cells=first_cells,
                octaves=octaves,
                persistence=persistence,
            )
            regions.append(simple_region(name, ridge, depth))
    return regions


def _strip(horizon: float, t: np.ndarray, center: np.ndarray, half_width: np.ndarray) -> Strip:
    """A Strip through the rows y = horizon + (1 - horizon) * t, t evenly spaced and increasing."""
    rows = horizon + (1 - horizon) * t
    return Strip(float(rows[0]), float(rows[-1]), tuple(center.tolist()), tuple(half_width.tolist()))


def _road(rng: np.random.Generator, horizon: float, vanishing_x: float) -> Region:
    """A road from the vanishing point to the bottom edge with center dashes (its first part is the road)."""
    t = np.linspace(0, 1, 33)  # 0 at the horizon, 1 at the bottom edge
    bottom_x = vanishing_x + rng.uniform(-0.3, 0.3)
    center = vanishing_x + (bottom_x - vanishing_x) * t + rng.uniform(-0.15, 0.15) * t * (1 - t)
    half_width = rng.uniform(0.2, 0.35)
    parts = [Part("road", _strip(horizon, t, center, 0.002 + half_width * t))]
    for start in np.arange(0.1, 1.0, 0.2):  # dashes, longer toward the viewer
        dash = (t >= start) & (t <= start + 0.09)
        parts.append(Part("road/marking", _strip(horizon, t[dash], center[dash], 0.001 + 0.012 * t[dash])))
    return Region("road", tuple(parts), 0.0, on_ground=True)


def _river(rng: np.random.Generator, horizon: float) -> Region:
    """A river meandering from the horizon to the bottom edge, widening toward the viewer."""
    t = np.linspace(0, 1, 33)
    meander = 0.12 * t * np.sin(rng.uniform(2, 6) * t + rng.uniform(0, 2 * math.pi))
    center = rng.uniform(0.2, 0.8) + rng.uniform(-0.2, 0.2) * t + meander
    half_width = 0.003 + rng.uniform(0.08, 0.22) * t
    return simple_region("river", _strip(horizon, t, center, half_width), on_ground=True)


def _tree(rng: np.random.Generator, *, x: float, y_base: float, height: float, depth: float, conifer: bool) -> Region:
    """A leafy tree (a wobbly crown on a trunk) or a conifer (three stacked triangles)."""
    trunk_width = height * rng.uniform(0.05, 0.09)
    if conifer:
        width = height * rng.uniform(0.35, 0.5)
        trunk = Box(x - trunk_width / 2, y_base - height * 0.2, x + trunk_width / 2, y_base)
        parts = [Part("tree/trunk", trunk)]
        for top, bottom, spread in ((1.0, 0.55, 0.7), (0.8, 0.3, 0.85), (0.6, 0.1, 1.0)):
            half = width * spread / 2
            tip, base = y_base - height * top, y_base - height * bottom
            parts.append(Part("tree/conifer", Polygon(((x, tip), (x + half, base), (x - half, base)))))
        return Region("tree", tuple(parts), depth)
    crown_ry = height * rng.uniform(0.3, 0.4)
    crown_rx = crown_ry * rng.uniform(0.7, 1.1)
    crown = Blob(x, y_base - height + crown_ry, crown_rx, crown_ry, outline_waves(rng, 0.18, 7))
    trunk = Box(x - trunk_width / 2, y_base - height * 0.5, x + trunk_width / 2, y_base)
    return Region("tree", (Part("tree/trunk", trunk), Part("tree", crown)), depth)


def _house(rng: np.random.Generator, *, x: float, y_base: float, scale: float, depth: float) -> Region:
    """Walls, a gable roof, a door and windows, all labelled house."""
    height = scale * rng.uniform(0.4, 0.6)
    width = height * rng.uniform(1.1, 1.8)
    x0, x1 = x - width / 2, x + width / 2
    top = y_base - height
    roof_top = top - height * rng.uniform(0.35, 0.6)
    overhang = width * 0.06
    door_half, door_x = width * 0.06, x + width * rng.uniform(-0.3, 0.3)
    window_half, window_top = height * 0.11, top + height * 0.2
    parts = [
        Part("house", Box(x0, top, x1, y_base)),
        Part("house/roof", Polygon(((x0 - overhang, top), (x1 + overhang, top), (x, roof_top)))),
        Part("house/door", Box(door_x - door_half, y_base - height * 0.5, door_x + door_half, y_base)),
    ]
    for window_x in np.linspace(x0 + width * 0.2, x1 - width * 0.2, 2 if width < 1.4 * height else 3):
        if abs(window_x - door_x) > door_half + window_half:
            window = Box(window_x - window_half, window_top, window_x + window_half, window_top + 2 * window_half)
            parts.append(Part("house/window", window))
    return Region("house", tuple(parts), depth)


def _fence(rng: np.random.Generator, *, y_base: float, scale: float, depth: float) -> Region:
    """Two rails on evenly spaced posts, parallel to the image plane."""
    height = scale * rng.uniform(0.12, 0.2)
    x0 = rng.uniform(-0.2, 0.4)
    x1 = x0 + rng.uniform(0.5, 1.2)
    post_half = height * 0.075
    rails = [Box(x0, y_base - height * top, x1, y_base - height * (top - 0.14)) for top in (0.85, 0.45)]
    posts = [Box(px - post_half, y_base - height, px + post_half, y_base) for px in np.arange(x0, x1, height * 0.9)]
    return Region("fence", tuple(Part("fence", shape) for shape in rails + posts), depth)


def _standing(
    rng: np.random.Generator,
    biome: _Biome,
    *,
    horizon: float,
    land_top: float,
    road: Strip | None,
) -> list[Region]:
    """Trees, bushes, rocks, a house, a fence and animals (boats on the sea), painted far to near."""
    placed: list[tuple[float, Region]] = []  # (y of its base, region)

    def base_y(clearance: float) -> float:
        return rng.uniform(max(land_top, horizon + clearance) + 0.01, 1.02)

    def depth(y: float) -> float:
        return float(ground_depth(y, horizon))

    def road_at(strip: Strip, y: float) -> tuple[float, float]:
        """The road's center and half width at row y."""
        rows = np.linspace(strip.top, strip.bottom, len(strip.center))
        return float(np.interp(y, rows, strip.center)), float(np.interp(y, rows, strip.half_width))

    def off_road(x: float, y: float, clearance: float) -> float:
        """x, or the nearest x beside the road on the same side when x is within clearance of it."""
        if road is None:
            return x
        center, half_width = road_at(road, y)
        if abs(x - center) < half_width + clearance:
            return center + math.copysign(half_width + clearance, x - center)
        return x

    for _ in range(rng.integers(0, biome.trees + 1)):
        y = base_y(0.02)
        scale = perspective(y, horizon)
        x = off_road(rng.uniform(0, 1), y, 0.05 + 0.2 * scale)
        height = 0.03 + 0.9 * scale * rng.uniform(0.6, 1.2)
        conifer = bool(rng.random() < biome.conifers)
        placed.append((y, _tree(rng, x=x, y_base=y, height=height, depth=depth(y), conifer=conifer)))
    for name, count, size, lift, squash in (
        ("bush", biome.bushes, 0.15, 0.3, 0.65),
        ("rock", biome.rocks, 0.12, 0.2, 0.55),
    ):
        for _ in range(rng.integers(0, count + 1)):
            y = base_y(0.02)
            rx = 0.01 + size * perspective(y, horizon) * rng.uniform(0.5, 1.2)
            ry = rx * squash * rng.uniform(0.8, 1.2)
            x = off_road(rng.uniform(0, 1), y, 1.2 * rx)
            blob = Blob(x, y - rx * lift, rx, ry, outline_waves(rng, 0.15, 7), y)
            placed.append((y, simple_region(name, blob, depth(y))))
    if rng.random() < biome.house:
        y = rng.uniform(land_top, max(land_top, horizon + 0.28)) + 0.02
        house = _house(rng, x=rng.uniform(0.1, 0.9), y_base=y, scale=0.05 + perspective(y, horizon), depth=depth(y))
        placed.append((y, house))
    if rng.random() < biome.fence:
        y = rng.uniform(max(land_top, horizon + 0.2), 1.0)
        placed.append((y, _fence(rng, y_base=y, scale=perspective(y, horizon), depth=depth(y))))
    for _ in range(rng.choice(4, p=[0.25, 0.35, 0.25, 0.15])):
        name = biome.animals[rng.integers(len(biome.animals))]
        y = rng.uniform(horizon + 0.02, land_top) if name == "boat" else base_y(0.06)
        height = THING_KINDS[name].height * max(perspective(y, horizon), 0.05)
        if name == "car" and road is not None:
            center, half_width = road_at(road, y)
            x = center + rng.uniform(-0.5, 0.5) * half_width
        else:
            x = rng.uniform(0.1, 0.9)
        placed.append((y, thing_region(name, rng, x=x, y=y, height=height, depth=depth(y))))
    placed.sort(key=lambda item: item[0])
    return [region for _, region in placed]


def sample_outdoor(rng: np.random.Generator, seed: int) -> Layout:
    names = list(_BIOMES)
    weights = np.array([_BIOMES[name].weight for name in names])
    biome = _BIOMES[names[rng.choice(len(names), p=weights / weights.sum())]]
    horizon = rng.uniform(0.35, 0.6)
    vanishing_x = rng.uniform(0.3, 0.7)
    regions = _skyline(rng, biome, horizon)

    ground = biome.grounds[rng.integers(len(biome.grounds))]
    flat = Band((horizon, horizon))
    land_top = horizon  # where the land begins, below any sea
    if rng.random() < biome.sea:
        land_top = horizon + rng.uniform(0.08, 0.3)
        shore = ridge_band(rng, base=land_top + 0.02, amplitude=0.04, first_cells=2, octaves=2, persistence=0.4)
        regions += [simple_region("sea", flat, on_ground=True), simple_region(ground, shore, on_ground=True)]
    else:
        regions.append(simple_region(ground, flat, on_ground=True))
        if rng.random() < 0.35:
            near = _NEAR_GROUNDS[ground][rng.integers(len(_NEAR_GROUNDS[ground]))]
            edge = ridge_band(
                rng,
                base=rng.uniform(0.85, 0.97),
                amplitude=rng.uniform(0.03, 0.1),
                first_cells=2,
                octaves=3,
                persistence=0.5,
            )
            regions.append(simple_region(near, edge, on_ground=True))

    road = None
    if rng.random() < biome.road:
        regions.append(_road(rng, horizon, vanishing_x))
        road = regions[-1].parts[0].shape
    elif land_top == horizon and rng.random() < biome.river:
        regions.append(_river(rng, horizon))
    if rng.random() < biome.flowers:  # flat patches, under everything standing
        for _ in range(rng.integers(1, 4)):
            y = rng.uniform(horizon + 0.15, 1.0)
            rx = rng.uniform(0.06, 0.2) * perspective(y, horizon) + 0.02
            patch = Blob(rng.uniform(0, 1), y, rx, rx * 0.25, outline_waves(rng, 0.2))
            regions.append(simple_region("flower", patch))
    regions += _standing(rng, biome, horizon=horizon, land_top=land_top, road=road)
    if rng.random() < 0.25:  # birds in the sky
        for _ in range(rng.integers(1, 4)):
            x, y = rng.uniform(0.05, 0.95), rng.uniform(0.08, horizon - 0.1)
            regions.append(thing_region("bird", rng, x=x, y=y, height=rng.uniform(0.025, 0.06), depth=0.6))
    return Layout("outdoor", seed, horizon, vanishing_x, tuple(regions))
