"""Geometry in frame coordinates (x right, y down, both in [0, 1]): shapes, regions, layouts, their
rasterization into label maps, and the shape builders every layout sampler shares."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from egsynth.data.cocostuff import UNLABELED, category


@dataclass(frozen=True)
class Box:
    x0: float
    y0: float
    x1: float
    y1: float


@dataclass(frozen=True)
class Ellipse:
    cx: float
    cy: float
    rx: float
    ry: float


@dataclass(frozen=True)
class Polygon:
    """A convex polygon, vertices in order (either winding)."""

    points: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class Blob:
    """An ellipse whose radius wobbles, r(θ) = 1 + Σ a_k cos(kθ + φ_k), cut flat below y = floor."""

    cx: float
    cy: float
    rx: float
    ry: float
    waves: tuple[tuple[int, float, float], ...]  # (k, a_k, φ_k)
    floor: float = 1.0


@dataclass(frozen=True)
class Band:
    """Everything below a ridgeline; `ridge[i]` is its y at x = i / (len(ridge) - 1)."""

    ridge: tuple[float, ...]


@dataclass(frozen=True)
class Strip:
    """A ribbon between y = top and y = bottom (a river, a road): at y = top + (bottom - top) * i / (n - 1)
    it spans center[i] ± half_width[i]."""

    top: float
    bottom: float
    center: tuple[float, ...]
    half_width: tuple[float, ...]


Shape = Box | Ellipse | Polygon | Blob | Band | Strip


@dataclass(frozen=True)
class Part:
    material: str  # key of materials.MATERIALS: the category name, or "category/part"
    shape: Shape


@dataclass(frozen=True)
class Region:
    """One stuff region or one thing instance, painted part by part."""

    category: str  # COCO-stuff name
    parts: tuple[Part, ...]
    depth: float  # 0 near .. 1 at the horizon: how much haze it gets
    on_ground: bool = False  # depth follows the ground plane row by row instead


@dataclass(frozen=True)
class Layout:
    """A resolution-independent scene: regions painted in order, later ones cover earlier ones."""

    kind: str  # one of layouts.SCENE_KINDS
    seed: int  # the layout seed it was sampled from
    horizon: float  # y of the horizon (eye level indoors)
    vanishing_x: float  # x of the vanishing point of ground-plane patterns (roads, floors)
    regions: tuple[Region, ...]


@dataclass(frozen=True, eq=False)
class Thing:
    """One thing instance in a rasterized layout."""

    category_id: int  # COCO id 1-90
    mask: np.ndarray  # bool [H, W]


@dataclass(frozen=True, eq=False)
class LabelMap:
    labels: np.ndarray  # uint8 [H, W]: COCO-stuff id - 1 per pixel, 255 unlabeled
    things: tuple[Thing, ...]  # one per visible thing instance, masks disjoint


def simple_region(name: str, shape: Shape, depth: float = 0.0, *, on_ground: bool = False) -> Region:
    """A region of one part in the category's own material; on the ground plane its haze follows the
    rows' distance."""
    return Region(name, (Part(name, shape),), depth, on_ground)


# ---------------------------------------------------------------------------------------------
# Rasterization


_OUTLINE_THETA = np.linspace(-math.pi, math.pi, 257)  # a Blob's outline is tabulated at these angles


def shape_bounds(shape: Shape) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) enclosing the shape."""
    match shape:
        case Box():
            return shape.x0, shape.y0, shape.x1, shape.y1
        case Ellipse():
            return shape.cx - shape.rx, shape.cy - shape.ry, shape.cx + shape.rx, shape.cy + shape.ry
        case Polygon():
            xs, ys = zip(*shape.points, strict=True)
            return min(xs), min(ys), max(xs), max(ys)
        case Blob():
            reach = 1 + sum(abs(a) for _, a, _ in shape.waves)
            y1 = min(shape.cy + shape.ry * reach, shape.floor)
            return (shape.cx - shape.rx * reach, shape.cy - shape.ry * reach, shape.cx + shape.rx * reach, y1)
        case Band():
            return 0.0, min(shape.ridge), 1.0, 1.0
        case Strip():
            left = min(c - w for c, w in zip(shape.center, shape.half_width, strict=True))
            right = max(c + w for c, w in zip(shape.center, shape.half_width, strict=True))
            return left, shape.top, right, shape.bottom
    raise TypeError(f"unknown shape {shape!r}")


def _inside(shape: Shape, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Whether pixel centers xs [1, w], ys [h, 1] lie in the shape: bool [h, w]."""
    match shape:
        case Box():
            return (xs >= shape.x0) & (xs < shape.x1) & (ys >= shape.y0) & (ys < shape.y1)
        case Ellipse():
            return ((xs - shape.cx) / shape.rx) ** 2 + ((ys - shape.cy) / shape.ry) ** 2 <= 1
        case Polygon():
            points = shape.points
            doubled_area = sum(
                ax * by - bx * ay for (ax, ay), (bx, by) in zip(points, points[1:] + points[:1], strict=True)
            )
            winding = 1.0 if doubled_area >= 0 else -1.0
            inside = np.ones(np.broadcast_shapes(xs.shape, ys.shape), dtype=bool)
            for (ax, ay), (bx, by) in zip(points, points[1:] + points[:1], strict=True):
                inside &= winding * ((bx - ax) * (ys - ay) - (by - ay) * (xs - ax)) >= 0
            return inside
        case Blob():
            dx = (xs - shape.cx) / shape.rx
            dy = (ys - shape.cy) / shape.ry
            outline = 1 + sum(a * np.cos(k * _OUTLINE_THETA + phase) for k, a, phase in shape.waves)  # [n]
            radius = np.interp(np.arctan2(dy, dx), _OUTLINE_THETA, outline)
            return (dx * dx + dy * dy <= radius * radius) & (ys <= shape.floor)
        case Band():
            ridge_y = np.interp(xs[0], np.linspace(0, 1, len(shape.ridge)), shape.ridge)  # [w]
            return ys >= ridge_y
        case Strip():
            row_t = np.linspace(shape.top, shape.bottom, len(shape.center))
            center = np.interp(ys[:, 0], row_t, shape.center)[:, None]  # [h, 1]
            half_width = np.interp(ys[:, 0], row_t, shape.half_width)[:, None]
            return np.abs(xs - center) <= half_width
    raise TypeError(f"unknown shape {shape!r}")


def _pixel_range(lo: float, hi: float, size: int) -> tuple[int, int]:
    """Indices i with pixel center (i + 0.5) / size in [lo, hi]."""
    return max(0, math.ceil(lo * size - 0.5)), min(size, math.floor(hi * size - 0.5) + 1)


@dataclass(frozen=True, eq=False)
class Painted:
    unit_map: np.ndarray  # intp [H, W]: index of the painted part covering each pixel, -1 none
    unit_region: np.ndarray  # intp [U]: region index of each part


@functools.lru_cache(maxsize=16)
def paint(regions: tuple[Region, ...], height: int, width: int) -> Painted:
    """Paint every part of every region in order (painter's algorithm) into a part-index map.

    Cached (read-only results): `rasterize` and `render` of one layout share the painting.
    """
    unit_map = np.full((height, width), -1, dtype=np.intp)
    unit_region = []
    for region_index, region in enumerate(regions):
        for part in region.parts:
            unit = len(unit_region)
            unit_region.append(region_index)
            x0, y0, x1, y1 = shape_bounds(part.shape)
            i0, i1 = _pixel_range(y0, y1, height)
            j0, j1 = _pixel_range(x0, x1, width)
            if i0 >= i1 or j0 >= j1:
                continue
            ys = ((np.arange(i0, i1) + 0.5) / height)[:, None]  # [h, 1]
            xs = ((np.arange(j0, j1) + 0.5) / width)[None, :]  # [1, w]
            unit_map[i0:i1, j0:j1][_inside(part.shape, xs, ys)] = unit
    unit_map.flags.writeable = False
    unit_region_array = np.array(unit_region, dtype=np.intp)
    unit_region_array.flags.writeable = False
    return Painted(unit_map, unit_region_array)


def rasterize(layout: Layout, height: int, width: int) -> LabelMap:
    """The layout's crisp label map at this size; depends on nothing but the layout."""
    painted = paint(layout.regions, height, width)
    regions = layout.regions
    # The extra last entries catch unpainted pixels (unit -1 -> region len(regions) -> 255).
    region_of_unit = np.append(painted.unit_region, len(regions))
    region_map = region_of_unit[painted.unit_map]  # [H, W]
    label_of_region = np.array([category(r.category).label_value for r in regions] + [UNLABELED], np.uint8)
    things = []
    for region_index, region in enumerate(regions):
        thing_category = category(region.category)
        if thing_category.isthing:
            mask = region_map == region_index
            if mask.any():
                things.append(Thing(thing_category.id, mask))
    return LabelMap(label_of_region[region_map], tuple(things))


# ---------------------------------------------------------------------------------------------
# Shape builders the layout samplers share

_RIDGE_POINTS = 257
_RIDGE_X = np.linspace(0.0, 1.0, _RIDGE_POINTS)


def _noise_1d(rng: np.random.Generator, *, first_cells: int, octaves: int, persistence: float) -> np.ndarray:
    """Multi-octave smooth value noise on _RIDGE_X, rescaled to [0, 1]."""
    profile = np.zeros(_RIDGE_POINTS)
    for octave in range(octaves):
        cells = first_cells * 2**octave
        knots = rng.uniform(-1.0, 1.0, cells + 1)
        position = _RIDGE_X * cells
        index = np.minimum(position.astype(int), cells - 1)
        t = position - index
        smooth = t * t * (3 - 2 * t)
        profile += persistence**octave * (knots[index] * (1 - smooth) + knots[index + 1] * smooth)
    return (profile - profile.min()) / max(np.ptp(profile), 1e-9)


def ridge_band(
    rng: np.random.Generator,
    *,
    base: float,
    amplitude: float,
    first_cells: int,
    octaves: int,
    persistence: float,
    peakiness: float = 1.0,
) -> Band:
    """A band under a ridgeline base - amplitude * noise(x) (mountains, hills, shorelines)."""
    profile = _noise_1d(rng, first_cells=first_cells, octaves=octaves, persistence=persistence) ** peakiness
    return Band(tuple((base - amplitude * profile).tolist()))


def outline_waves(rng: np.random.Generator, wobble: float, harmonics: int = 5) -> tuple[tuple[int, float, float], ...]:
    """Random outline harmonics k = 2..harmonics+1 for a Blob, amplitude falling with k."""
    return tuple(
        (k, float(rng.uniform(0.3, 1.0) * wobble / math.sqrt(k - 1)), float(rng.uniform(0, 2 * math.pi)))
        for k in range(2, harmonics + 2)
    )


def ground_depth(y: float | np.ndarray, horizon: float) -> np.ndarray:
    """Haze depth of the ground plane at row y: 1 at the horizon, falling toward the viewer."""
    return np.exp(-np.maximum(np.asarray(y) - horizon, 0.0) / 0.07)


def perspective(y_base: float, horizon: float) -> float:
    """Size factor of an object standing at y_base: 0 at the horizon, 1 at the bottom edge."""
    return max(y_base - horizon, 0.0) / (1.0 - horizon)


def segment(ax: float, ay: float, bx: float, by: float, width_a: float, width_b: float) -> Polygon:
    """A thick line from (ax, ay) to (bx, by), as a convex trapezoid."""
    length = math.hypot(bx - ax, by - ay) or 1.0
    nx, ny = -(by - ay) / length, (bx - ax) / length
    return Polygon(
        (
            (ax + nx * width_a / 2, ay + ny * width_a / 2),
            (bx + nx * width_b / 2, by + ny * width_b / 2),
            (bx - nx * width_b / 2, by - ny * width_b / 2),
            (ax - nx * width_a / 2, ay - ny * width_a / 2),
        )
    )


def ground_quad(horizon: float, vanishing_x: float, u0: float, u1: float, z0: float, z1: float) -> Polygon:
    """The screen image of the ground rectangle u in [u0, u1] (sideways), z in [z0, z1] (depth)."""
    return Polygon(
        (
            (vanishing_x + u0 / z0, horizon + 1 / z0),
            (vanishing_x + u1 / z0, horizon + 1 / z0),
            (vanishing_x + u1 / z1, horizon + 1 / z1),
            (vanishing_x + u0 / z1, horizon + 1 / z1),
        )
    )
