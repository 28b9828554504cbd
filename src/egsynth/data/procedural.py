"""Procedural scene photos with exact COCO-stuff label maps: the embedded default dataset.

No machine of ours can download COCO-stuff, so the default pipeline renders its own scenes
(docs/design.md, "The embedded default dataset"). Every image is `render(layout, style, seed)`:

- the layout alone fixes geometry and labels (`rasterize` never sees a style),
- the style alone fixes colors and lighting (time of day, season, haze, palette),
- the seed alone fixes texture noise.

So `render(layout_A, style_B, seed_A, H, W)` is an exact ground truth for "layout A in the style of
scene B", which COCO-stuff cannot give (the paper, Sec. 4, approximates it by retrieval plus color
correction). Styles are stationary over the image and correlated across classes (water mirrors the
sky, every surface takes the light's tint, haze fades far regions toward the horizon), the
assumptions behind the paper's patch self-supervision (Sec. 3.4).

Geometry lives in frame coordinates (x right, y down, both in [0, 1]), so a layout rasterizes to
any size. Label maps are crisp; images are softened by a small blur. Labels are real COCO-stuff
values (`id - 1`), thing instances come with their own masks.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from egsynth.data.cocostuff import UNLABELED, category

RGB = tuple[float, float, float]

SCENE_KINDS = ("outdoor", "indoor", "object")

# ---------------------------------------------------------------------------------------------
# Style

STYLE_FIELDS: tuple[str, ...] = (
    "time_of_day",  # 0 night, ~0.27 dawn/dusk twilight, ~0.42 golden hour, 1 midday
    "season",  # 0 summer green, 0.5 autumn, 1 winter (plants only)
    "haze",  # aerial perspective: far regions fade toward the horizon's color
    "overcast",  # grey sky, diffuse light, weak shading
    "warmth",  # color temperature of the light: 0 cool blue, 1 warm orange
    "saturation",  # palette chroma: 0 greyish, 0.5 neutral, 1 vivid
    "hue_shift",  # palette hue rotation: 0.5 none, 0 / 1 = -/+ 30 degrees
    "contrast",  # 0 flat, 0.5 neutral, 1 punchy
    "exposure",  # 0 dark, 0.5 neutral, 1 bright
    "texture",  # texture strength: 0 smooth, 1 strongly textured
)


@dataclass(frozen=True, eq=False)
class Style:
    """A point of the continuous style space: `vector[i]` is `STYLE_FIELDS[i]`, each in [0, 1]."""

    vector: np.ndarray  # float32 [len(STYLE_FIELDS)], read-only

    def __post_init__(self) -> None:
        vector = np.array(self.vector, dtype=np.float32)
        if vector.shape != (len(STYLE_FIELDS),):
            raise ValueError(f"a style vector has shape ({len(STYLE_FIELDS)},), got {vector.shape}")
        if not np.all((vector >= 0) & (vector <= 1)):
            raise ValueError(f"style components must lie in [0, 1], got {vector.tolist()}")
        vector.flags.writeable = False
        object.__setattr__(self, "vector", vector)

    @classmethod
    def from_fields(cls, **values: float) -> Style:
        """A style from named components; a component not given is 0.5."""
        unknown = sorted(set(values) - set(STYLE_FIELDS))
        if unknown:
            raise ValueError(f"unknown style fields {unknown}; known: {STYLE_FIELDS}")
        return cls(np.array([values.get(name, 0.5) for name in STYLE_FIELDS]))

    def as_dict(self) -> dict[str, float]:
        return dict(zip(STYLE_FIELDS, self.vector.tolist(), strict=True))


# Streams of `default_rng([seed, stream])`, so style, layout and texture draws never collide.
_STYLE_STREAM = 1
_LAYOUT_STREAM = 2
_TEXTURE_STREAM = 3


def sample_style(seed: int) -> Style:
    """A random style: mostly daylight, some golden hour and twilight, a few nights."""
    rng = np.random.default_rng([seed, _STYLE_STREAM])
    period = rng.random()
    if period < 0.07:
        time_of_day = rng.uniform(0.02, 0.16)
    elif period < 0.27:
        time_of_day = rng.uniform(0.18, 0.45)
    else:
        time_of_day = rng.uniform(0.45, 1.0)
    return Style.from_fields(
        time_of_day=time_of_day,
        season=rng.random(),
        haze=rng.beta(1.3, 3.0),
        overcast=rng.beta(1.2, 3.0),
        warmth=rng.beta(2.0, 2.0),
        saturation=rng.beta(4.0, 4.0),
        hue_shift=rng.beta(5.0, 5.0),
        contrast=rng.beta(3.0, 3.0),
        exposure=rng.beta(4.0, 4.0),
        texture=rng.beta(2.0, 2.0),
    )


# ---------------------------------------------------------------------------------------------
# Geometry: shapes in frame coordinates, regions, layouts


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
    material: str  # key of _MATERIALS: the category name, or "category/part"
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

    kind: str  # one of SCENE_KINDS
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


# ---------------------------------------------------------------------------------------------
# Rasterization


_OUTLINE_THETA = np.linspace(-math.pi, math.pi, 257)  # a Blob's outline is tabulated at these angles


def _bounds(shape: Shape) -> tuple[float, float, float, float]:
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
class _Painted:
    unit_map: np.ndarray  # intp [H, W]: index of the painted part covering each pixel, -1 none
    unit_region: np.ndarray  # intp [U]: region index of each part


@functools.lru_cache(maxsize=16)
def _paint(regions: tuple[Region, ...], height: int, width: int) -> _Painted:
    """Paint every part of every region in order (painter's algorithm) into a part-index map.

    Cached (read-only results): `rasterize` and `render` of one layout share the painting.
    """
    unit_map = np.full((height, width), -1, dtype=np.intp)
    unit_region = []
    for region_index, region in enumerate(regions):
        for part in region.parts:
            unit = len(unit_region)
            unit_region.append(region_index)
            x0, y0, x1, y1 = _bounds(part.shape)
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
    return _Painted(unit_map, unit_region_array)


def rasterize(layout: Layout, height: int, width: int) -> LabelMap:
    """The layout's crisp label map at this size; depends on nothing but the layout."""
    painted = _paint(layout.regions, height, width)
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
# Layout sampling: shared pieces

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


def _ridge(
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


def _waves(rng: np.random.Generator, wobble: float, harmonics: int = 5) -> tuple[tuple[int, float, float], ...]:
    """Random outline harmonics k = 2..harmonics+1 for a Blob, amplitude falling with k."""
    return tuple(
        (k, float(rng.uniform(0.3, 1.0) * wobble / math.sqrt(k - 1)), float(rng.uniform(0, 2 * math.pi)))
        for k in range(2, harmonics + 2)
    )


def _ground_depth(y: float | np.ndarray, horizon: float) -> np.ndarray:
    """Haze depth of the ground plane at row y: 1 at the horizon, falling toward the viewer."""
    return np.exp(-np.maximum(np.asarray(y) - horizon, 0.0) / 0.07)


def _perspective(y_base: float, horizon: float) -> float:
    """Size factor of an object standing at y_base: 0 at the horizon, 1 at the bottom edge."""
    return max(y_base - horizon, 0.0) / (1.0 - horizon)


def _segment(ax: float, ay: float, bx: float, by: float, width_a: float, width_b: float) -> Polygon:
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


def _ground_quad(horizon: float, vanishing_x: float, u0: float, u1: float, z0: float, z1: float) -> Polygon:
    """The screen image of the ground rectangle u in [u0, u1] (sideways), z in [z0, z1] (depth)."""
    return Polygon(
        (
            (vanishing_x + u0 / z0, horizon + 1 / z0),
            (vanishing_x + u1 / z0, horizon + 1 / z0),
            (vanishing_x + u1 / z1, horizon + 1 / z1),
            (vanishing_x + u0 / z1, horizon + 1 / z1),
        )
    )


# ---------------------------------------------------------------------------------------------
# Things: parts in a unit box (x forward to the right, y down), placed into the frame later


def _place(shape: Shape, x0: float, y0: float, width: float, height: float, flip: bool) -> Shape:
    """Map a shape from the unit box onto the frame box at (x0, y0), mirrored if flip."""

    def fx(u: float) -> float:
        return x0 + width * ((1 - u) if flip else u)

    def fy(v: float) -> float:
        return y0 + height * v

    match shape:
        case Box():
            left, right = sorted((fx(shape.x0), fx(shape.x1)))
            return Box(left, fy(shape.y0), right, fy(shape.y1))
        case Ellipse():
            return Ellipse(fx(shape.cx), fy(shape.cy), shape.rx * width, shape.ry * height)
        case Polygon():
            return Polygon(tuple((fx(u), fy(v)) for u, v in shape.points))
        case Blob():
            # Mirroring maps θ to π - θ: cos(k(π - θ) + φ) = cos(kθ - φ - kπ).
            waves = tuple((k, a, (-phase - k * math.pi) if flip else phase) for k, a, phase in shape.waves)
            return Blob(fx(shape.cx), fy(shape.cy), shape.rx * width, shape.ry * height, waves, fy(shape.floor))
    raise TypeError(f"things are built from boxes, ellipses, polygons and blobs, not {shape!r}")


def _quadruped(
    name: str,
    rng: np.random.Generator,
    *,
    body_height: float,
    leg_length: float,
    leg_width: float,
    head_size: float,
    neck_rise: float,
) -> list[Part]:
    """Body, neck, head, four legs and a tail; elephants get ears and a trunk, sheep a fleece."""
    legs_top = 1.0 - leg_length
    body_y = legs_top - body_height * 0.25
    head_x, head_y = 0.86, body_y - body_height * 0.3 - neck_rise
    dark = f"{name}/dark"
    parts = [Part(dark, _segment(0.13, body_y - body_height * 0.3, 0.06, body_y + body_height * 0.5, 0.04, 0.025))]
    for x in (0.2, 0.32, 0.58, 0.7):
        parts.append(Part(dark if name == "sheep" else name, Box(x - leg_width / 2, body_y, x + leg_width / 2, 1.0)))
    if name == "sheep":
        parts.append(Part(name, Blob(0.45, body_y, 0.36, body_height / 2, _waves(rng, 0.06, 8))))
    else:
        parts.append(Part(name, Ellipse(0.45, body_y, 0.35, body_height / 2)))
    parts.append(Part(name, _segment(0.66, body_y - body_height * 0.1, head_x - 0.04, head_y, 0.22, 0.1)))
    parts.append(Part(dark if name == "sheep" else name, Ellipse(head_x, head_y, head_size * 0.6, head_size * 0.45)))
    if name == "elephant":
        parts.append(Part(name, _segment(head_x + 0.06, head_y, 0.97, 0.95, 0.09, 0.05)))
        parts.append(Part(dark, Ellipse(head_x - 0.1, head_y + 0.02, head_size * 0.35, head_size * 0.55)))
    return parts


def _person(rng: np.random.Generator) -> list[Part]:
    return [
        Part("person/legs", Box(0.24, 0.55, 0.48, 1.0)),
        Part("person/legs", Box(0.52, 0.55, 0.76, 1.0)),
        Part("person", Box(0.2, 0.17, 0.8, 0.57)),
        Part("person", Box(0.04, 0.19, 0.2, 0.52)),
        Part("person", Box(0.8, 0.19, 0.96, 0.52)),
        Part("person/skin", Ellipse(0.5, 0.09, 0.22, 0.085)),
        Part("person/hair", Ellipse(0.5, 0.045, 0.22, 0.045)),
    ]


def _bird(rng: np.random.Generator) -> list[Part]:
    return [
        Part("bird", Polygon(((0.42, 0.55), (0.0, 0.05), (0.2, 0.3), (0.55, 0.65)))),
        Part("bird", Polygon(((0.58, 0.55), (1.0, 0.05), (0.8, 0.3), (0.45, 0.65)))),
        Part("bird", Ellipse(0.5, 0.6, 0.14, 0.16)),
    ]


def _boat(rng: np.random.Generator) -> list[Part]:
    return [
        Part("boat/sail", Polygon(((0.53, 0.05), (0.53, 0.68), (0.9, 0.68)))),
        Part("boat/sail", Polygon(((0.47, 0.15), (0.47, 0.68), (0.18, 0.68)))),
        Part("boat/mast", Box(0.475, 0.02, 0.525, 0.72)),
        Part("boat", Polygon(((0.0, 0.7), (1.0, 0.7), (0.85, 1.0), (0.15, 1.0)))),
    ]


def _car(rng: np.random.Generator) -> list[Part]:
    return [
        Part("car", Polygon(((0.2, 0.42), (0.32, 0.06), (0.7, 0.06), (0.84, 0.42)))),
        Part("car/window", Polygon(((0.27, 0.4), (0.35, 0.12), (0.67, 0.12), (0.77, 0.4)))),
        Part("car", Box(0.5, 0.1, 0.53, 0.42)),
        Part("car", Box(0.0, 0.4, 1.0, 0.82)),
        Part("car/wheel", Ellipse(0.22, 0.8, 0.1, 0.2)),
        Part("car/wheel", Ellipse(0.78, 0.8, 0.1, 0.2)),
    ]


def _chair(rng: np.random.Generator) -> list[Part]:
    return [
        Part("chair", Box(0.1, 0.0, 0.9, 0.42)),
        Part("chair", Box(0.12, 0.42, 0.22, 0.5)),
        Part("chair", Box(0.78, 0.42, 0.88, 0.5)),
        Part("chair", Box(0.02, 0.5, 0.98, 0.62)),
        Part("chair", Box(0.06, 0.62, 0.16, 1.0)),
        Part("chair", Box(0.84, 0.62, 0.94, 1.0)),
    ]


def _couch(rng: np.random.Generator) -> list[Part]:
    return [
        Part("couch", Box(0.06, 0.05, 0.94, 0.55)),
        Part("couch/cushion", Box(0.14, 0.45, 0.5, 0.66)),
        Part("couch/cushion", Box(0.5, 0.45, 0.86, 0.66)),
        Part("couch", Box(0.06, 0.62, 0.94, 0.9)),
        Part("couch", Box(0.0, 0.3, 0.14, 0.9)),
        Part("couch", Box(0.86, 0.3, 1.0, 0.9)),
        Part("couch/cushion", Box(0.04, 0.9, 0.1, 1.0)),
        Part("couch/cushion", Box(0.9, 0.9, 0.96, 1.0)),
    ]


def _potted_plant(rng: np.random.Generator) -> list[Part]:
    return [
        Part("potted plant", Blob(0.5, 0.34, 0.46, 0.34, _waves(rng, 0.2, 7))),
        Part("potted plant/pot", Polygon(((0.2, 0.6), (0.8, 0.6), (0.7, 1.0), (0.3, 1.0)))),
    ]


def _teddy_bear(rng: np.random.Generator) -> list[Part]:
    return [
        Part("teddy bear", Ellipse(0.26, 0.07, 0.11, 0.08)),
        Part("teddy bear", Ellipse(0.74, 0.07, 0.11, 0.08)),
        Part("teddy bear", Ellipse(0.3, 0.87, 0.17, 0.13)),
        Part("teddy bear", Ellipse(0.7, 0.87, 0.17, 0.13)),
        Part("teddy bear", Ellipse(0.5, 0.62, 0.34, 0.3)),
        Part("teddy bear/muzzle", Ellipse(0.5, 0.66, 0.18, 0.16)),
        Part("teddy bear", Ellipse(0.16, 0.55, 0.13, 0.18)),
        Part("teddy bear", Ellipse(0.84, 0.55, 0.13, 0.18)),
        Part("teddy bear", Ellipse(0.5, 0.26, 0.28, 0.22)),
        Part("teddy bear/muzzle", Ellipse(0.5, 0.33, 0.11, 0.07)),
        Part("eye", Ellipse(0.4, 0.22, 0.035, 0.03)),
        Part("eye", Ellipse(0.6, 0.22, 0.035, 0.03)),
        Part("eye", Ellipse(0.5, 0.3, 0.04, 0.025)),
    ]


def _portrait(name: str, rng: np.random.Generator) -> list[Part]:
    """An animal facing the camera, head and chest, for close-ups."""
    dark, eye = f"{name}/dark", "eye"
    head = {"horse": Ellipse(0.5, 0.42, 0.17, 0.34), "sheep": Ellipse(0.5, 0.45, 0.17, 0.25)}.get(
        name, Ellipse(0.5, 0.42, 0.3, 0.28)
    )
    ears = {
        "dog": [Ellipse(0.22, 0.45, 0.1, 0.22), Ellipse(0.78, 0.45, 0.1, 0.22)],
        "cow": [Ellipse(0.15, 0.3, 0.14, 0.06), Ellipse(0.85, 0.3, 0.14, 0.06)],
        "sheep": [Ellipse(0.2, 0.3, 0.14, 0.05), Ellipse(0.8, 0.3, 0.14, 0.05)],
        "horse": [_segment(0.42, 0.12, 0.38, 0.0, 0.07, 0.02), _segment(0.58, 0.12, 0.62, 0.0, 0.07, 0.02)],
        "elephant": [Ellipse(0.17, 0.42, 0.2, 0.27), Ellipse(0.83, 0.42, 0.2, 0.27)],
    }[name]
    parts = [Part(dark if name in ("dog", "sheep") else name, shape) for shape in ears]
    parts.append(Part(name, Ellipse(0.5, 1.0, 0.46, 0.42)))  # chest
    if name == "sheep":  # fleece around a dark face
        parts.append(Part(name, Blob(0.5, 0.22, 0.28, 0.16, _waves(rng, 0.1, 8))))
    parts.append(Part(dark if name == "sheep" else name, head))
    if name == "elephant":
        parts.append(Part(name, _segment(0.5, 0.5, 0.5, 1.0, 0.2, 0.12)))
    elif name in ("dog", "cow", "horse"):
        muzzle_y = {"dog": 0.56, "cow": 0.58, "horse": 0.68}[name]
        parts.append(Part(f"{name}/muzzle", Ellipse(0.5, muzzle_y, 0.15, 0.1)))
        parts.append(Part(eye, Ellipse(0.5, muzzle_y - 0.05, 0.05, 0.03)))
    eye_dx, eye_y = (0.1, 0.32) if name in ("horse", "sheep") else (0.12, 0.36)
    parts += [
        Part(eye, Ellipse(0.5 - eye_dx, eye_y, 0.035, 0.03)),
        Part(eye, Ellipse(0.5 + eye_dx, eye_y, 0.035, 0.03)),
    ]
    return parts


def _quadruped_builder(name: str, **proportions: float) -> Callable[[np.random.Generator], list[Part]]:
    return functools.partial(_quadruped, name, **proportions)


@dataclass(frozen=True)
class _ThingKind:
    build: Callable[[np.random.Generator], list[Part]]
    aspect: float  # width / height of its unit box, in frame units
    height: float  # frame height when standing at the bottom edge (a close-up starts from it)
    focus: tuple[float, float] = (0.5, 0.55)  # unit-box point a close-up centers on


# fmt: off
_THING_KINDS: dict[str, _ThingKind] = {
    "cow": _ThingKind(_quadruped_builder("cow", body_height=0.45, leg_length=0.36, leg_width=0.08,
                                         head_size=0.2, neck_rise=0.02), aspect=1.5, height=0.32),
    "horse": _ThingKind(_quadruped_builder("horse", body_height=0.34, leg_length=0.45, leg_width=0.06,
                                           head_size=0.22, neck_rise=0.2), aspect=1.2, height=0.42),
    "sheep": _ThingKind(_quadruped_builder("sheep", body_height=0.55, leg_length=0.28, leg_width=0.06,
                                           head_size=0.2, neck_rise=0.02), aspect=1.35, height=0.22),
    "dog": _ThingKind(_quadruped_builder("dog", body_height=0.36, leg_length=0.38, leg_width=0.07,
                                         head_size=0.26, neck_rise=0.12), aspect=1.25, height=0.2),
    "elephant": _ThingKind(_quadruped_builder("elephant", body_height=0.55, leg_length=0.33, leg_width=0.13,
                                              head_size=0.34, neck_rise=0.0), aspect=1.3, height=0.6),
    "person": _ThingKind(_person, aspect=0.36, height=0.55),
    "bird": _ThingKind(_bird, aspect=2.0, height=0.05),
    "boat": _ThingKind(_boat, aspect=1.1, height=0.3),
    "car": _ThingKind(_car, aspect=2.2, height=0.3),
    "chair": _ThingKind(_chair, aspect=0.6, height=0.45),
    "couch": _ThingKind(_couch, aspect=2.0, height=0.45),
    "potted plant": _ThingKind(_potted_plant, aspect=0.7, height=0.4),
    "teddy bear": _ThingKind(_teddy_bear, aspect=0.85, height=0.25),
}
# fmt: on

_PORTRAITS: dict[str, _ThingKind] = {
    name: _ThingKind(functools.partial(_portrait, name), aspect=1.0, height=1.0, focus=(0.5, 0.5))
    for name in ("dog", "cow", "sheep", "horse", "elephant")
}


def _thing(
    name: str,
    rng: np.random.Generator,
    *,
    x: float,
    y: float,
    height: float,
    depth: float,
    anchor: tuple[float, float] = (0.5, 1.0),
    portrait: bool = False,
) -> Region:
    """A thing instance `height` tall, facing a random side, with its unit-box point `anchor` at (x, y)
    (by default the middle of its base); animals face the camera if `portrait`."""
    kind = _PORTRAITS[name] if portrait else _THING_KINDS[name]
    width = height * kind.aspect
    flip = bool(rng.random() < 0.5)
    anchor_u = 1 - anchor[0] if flip else anchor[0]
    x0, y0 = x - anchor_u * width, y - anchor[1] * height
    parts = tuple(Part(p.material, _place(p.shape, x0, y0, width, height, flip)) for p in kind.build(rng))
    return Region(name, parts, depth)


# ---------------------------------------------------------------------------------------------
# Outdoor layouts


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
        stratus = Blob(cx, cy, rx, rx * rng.uniform(0.08, 0.16), _waves(rng, 0.15))
        return _simple("clouds", stratus, 0.9)
    size = rng.uniform(0.05, 0.12)
    base = cy + size * 0.35
    parts = []
    for _ in range(rng.integers(2, 6)):
        dx, r = rng.uniform(-1.6, 1.6), rng.uniform(0.6, 1.2)
        puff = Blob(cx + dx * size, cy - abs(dx) * size * 0.3, r * size, r * size * 0.75, _waves(rng, 0.12), base)
        parts.append(Part("clouds", puff))
    return Region("clouds", tuple(parts), 0.9)


def _skyline(rng: np.random.Generator, biome: _Biome, horizon: float) -> list[Region]:
    """Sky, clouds and what rises above the horizon: mountains, hills, fog, a distant forest edge."""
    regions = [_simple("sky-other", Box(0, 0, 1, 1), 1.0)]
    regions += [_clouds(rng, horizon) for _ in range(rng.integers(0, 5))]
    if rng.random() < biome.mountains:
        for layer in range(rng.integers(1, 3)):
            amplitude = min(rng.uniform(0.12, 0.32), horizon - 0.08) / (1 + 0.6 * layer)
            base = horizon - rng.uniform(0.0, 0.04)
            ridge = _ridge(
                rng, base=base, amplitude=amplitude, first_cells=2, octaves=6, persistence=0.5, peakiness=1.4
            )
            regions.append(_simple("mountain", ridge, 0.9 - 0.12 * layer))
    lower_ridges = (  # name, probability, amplitude range, first_cells, octaves, persistence, depth
        ("hill", biome.hills, (0.03, 0.12), 2, 3, 0.4, 0.65),
        ("fog", biome.fog, (0.03, 0.08), 3, 3, 0.5, 0.95),
        ("tree", biome.treeline, (0.02, 0.05), 24, 3, 0.6, 0.7),
    )
    for name, probability, amplitude, first_cells, octaves, persistence, depth in lower_ridges:
        if rng.random() < probability:
            ridge = _ridge(
                rng,
                base=horizon + 0.005,
                amplitude=rng.uniform(*amplitude),
                first_cells=first_cells,
                octaves=octaves,
                persistence=persistence,
            )
            regions.append(_simple(name, ridge, depth))
    return regions


def _simple(name: str, shape: Shape, depth: float = 0.0, *, on_ground: bool = False) -> Region:
    """A region of one part in the category's own material; on the ground plane its haze follows the
    rows' distance."""
    return Region(name, (Part(name, shape),), depth, on_ground)


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
    return _simple("river", _strip(horizon, t, center, half_width), on_ground=True)


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
    crown = Blob(x, y_base - height + crown_ry, crown_rx, crown_ry, _waves(rng, 0.18, 7))
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
        return float(_ground_depth(y, horizon))

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
        scale = _perspective(y, horizon)
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
            rx = 0.01 + size * _perspective(y, horizon) * rng.uniform(0.5, 1.2)
            ry = rx * squash * rng.uniform(0.8, 1.2)
            x = off_road(rng.uniform(0, 1), y, 1.2 * rx)
            blob = Blob(x, y - rx * lift, rx, ry, _waves(rng, 0.15, 7), y)
            placed.append((y, _simple(name, blob, depth(y))))
    if rng.random() < biome.house:
        y = rng.uniform(land_top, max(land_top, horizon + 0.28)) + 0.02
        house = _house(rng, x=rng.uniform(0.1, 0.9), y_base=y, scale=0.05 + _perspective(y, horizon), depth=depth(y))
        placed.append((y, house))
    if rng.random() < biome.fence:
        y = rng.uniform(max(land_top, horizon + 0.2), 1.0)
        placed.append((y, _fence(rng, y_base=y, scale=_perspective(y, horizon), depth=depth(y))))
    for _ in range(rng.choice(4, p=[0.25, 0.35, 0.25, 0.15])):
        name = biome.animals[rng.integers(len(biome.animals))]
        y = rng.uniform(horizon + 0.02, land_top) if name == "boat" else base_y(0.06)
        height = _THING_KINDS[name].height * max(_perspective(y, horizon), 0.05)
        if name == "car" and road is not None:
            center, half_width = road_at(road, y)
            x = center + rng.uniform(-0.5, 0.5) * half_width
        else:
            x = rng.uniform(0.1, 0.9)
        placed.append((y, _thing(name, rng, x=x, y=y, height=height, depth=depth(y))))
    placed.sort(key=lambda item: item[0])
    return [region for _, region in placed]


def _sample_outdoor(rng: np.random.Generator, seed: int) -> Layout:
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
        shore = _ridge(rng, base=land_top + 0.02, amplitude=0.04, first_cells=2, octaves=2, persistence=0.4)
        regions += [_simple("sea", flat, on_ground=True), _simple(ground, shore, on_ground=True)]
    else:
        regions.append(_simple(ground, flat, on_ground=True))
        if rng.random() < 0.35:
            near = _NEAR_GROUNDS[ground][rng.integers(len(_NEAR_GROUNDS[ground]))]
            edge = _ridge(
                rng,
                base=rng.uniform(0.85, 0.97),
                amplitude=rng.uniform(0.03, 0.1),
                first_cells=2,
                octaves=3,
                persistence=0.5,
            )
            regions.append(_simple(near, edge, on_ground=True))

    road = None
    if rng.random() < biome.road:
        regions.append(_road(rng, horizon, vanishing_x))
        road = regions[-1].parts[0].shape
    elif land_top == horizon and rng.random() < biome.river:
        regions.append(_river(rng, horizon))
    if rng.random() < biome.flowers:  # flat patches, under everything standing
        for _ in range(rng.integers(1, 4)):
            y = rng.uniform(horizon + 0.15, 1.0)
            rx = rng.uniform(0.06, 0.2) * _perspective(y, horizon) + 0.02
            patch = Blob(rng.uniform(0, 1), y, rx, rx * 0.25, _waves(rng, 0.2))
            regions.append(_simple("flower", patch))
    regions += _standing(rng, biome, horizon=horizon, land_top=land_top, road=road)
    if rng.random() < 0.25:  # birds in the sky
        for _ in range(rng.integers(1, 4)):
            x, y = rng.uniform(0.05, 0.95), rng.uniform(0.08, horizon - 0.1)
            regions.append(_thing("bird", rng, x=x, y=y, height=rng.uniform(0.025, 0.06), depth=0.6))
    return Layout("outdoor", seed, horizon, vanishing_x, tuple(regions))


# ---------------------------------------------------------------------------------------------
# Indoor layouts: a one-point-perspective room


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


def _sample_indoor(rng: np.random.Generator, seed: int) -> Layout:
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
        _simple("ceiling-other", Polygon(((0, 0), (1, 0), (x1, y0), (x0, y0)))),
        Region(wall, walls, 0.0),
        _simple(floor, Polygon(((0, 1), (x0, y1), (x1, y1), (1, 1)))),
    ]
    if rng.random() < 0.8:
        regions += _window(rng, x0, y0, x1, y1)
    if floor != "carpet" and rng.random() < 0.5:  # a rug: a rectangle on the floor plane
        z_near, z_far = 1 / (rng.uniform(0.85, 1.0) - horizon), 1 / (rng.uniform(y1 + 0.03, 0.8) - horizon)
        u0 = rng.uniform(-1.2, 0.2)
        regions.append(
            _simple("carpet", _ground_quad(horizon, vanishing_x, u0, u0 + rng.uniform(0.6, 1.2), z_far, z_near))
        )

    furniture: list[tuple[float, Region]] = []  # (y of its base, region), painted far to near
    if rng.random() < 0.6:
        y = rng.uniform(y1 + 0.03, 1.0)
        furniture.append((y, _table(rng, x=rng.uniform(0.2, 0.8), y_base=y, scale=_perspective(y, horizon))))
    for _ in range(rng.integers(1, 4)):
        name = ("chair", "chair", "couch", "potted plant", "teddy bear", "person", "dog")[rng.integers(7)]
        y = rng.uniform(y1 + 0.03, 1.0)
        height = _THING_KINDS[name].height * 1.6 * _perspective(y, horizon)
        furniture.append((y, _thing(name, rng, x=rng.uniform(0.1, 0.9), y=y, height=height, depth=0.0)))
    furniture.sort(key=lambda item: item[0])
    regions += [region for _, region in furniture]
    return Layout("indoor", seed, horizon, vanishing_x, tuple(regions))


# ---------------------------------------------------------------------------------------------
# Object-centric layouts: one thing filling most of the frame

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
    floor_edge = _ridge(rng, base=horizon, amplitude=0.02, first_cells=2, octaves=2, persistence=0.5)
    background = (_simple(backdrop, Box(0, 0, 1, 1), 0.3), _simple(floor, floor_edge, on_ground=True))
    portrait = name in _PORTRAITS
    kind = _PORTRAITS[name] if portrait else _THING_KINDS[name]
    height = min(0.9, 0.9 / kind.aspect)
    x, y = rng.uniform(0.45, 0.55), rng.uniform(0.5, 0.6)
    state = rng.bit_generator.state
    for _ in range(8):  # zoom in on the thing (same shape, same random draws) until it covers enough
        rng.bit_generator.state = state
        thing = _thing(name, rng, x=x, y=y, height=height, depth=0.0, anchor=kind.focus, portrait=portrait)
        coverage = (_paint.__wrapped__((thing,), 48, 48).unit_map >= 0).mean()  # uncached
        if coverage >= _OBJECT_COVERAGE:
            break
        height *= math.sqrt(_OBJECT_COVERAGE / max(coverage, 0.05)) * 1.05
    return Layout("object", seed, horizon, 0.5, (*background, thing))


_SAMPLERS: dict[str, Callable[[np.random.Generator, int], Layout]] = {
    "outdoor": _sample_outdoor,
    "indoor": _sample_indoor,
    "object": _sample_object,
}


def sample_layout(seed: int, kind: str) -> Layout:
    """A random plausible layout of this kind (see SCENE_KINDS), deterministic in (seed, kind)."""
    if kind not in _SAMPLERS:
        raise ValueError(f"unknown scene kind {kind!r}; known: {SCENE_KINDS}")
    rng = np.random.default_rng([seed, _LAYOUT_STREAM, SCENE_KINDS.index(kind)])
    return _SAMPLERS[kind](rng, seed)


# ---------------------------------------------------------------------------------------------
# Materials: base colors and texture character per category (or category part)


@dataclass(frozen=True)
class _Material:
    color: RGB  # sRGB base color under white daylight (summer for plants)
    autumn: RGB | None = None  # plant color at season 0.5 (None: no seasonal change)
    winter: RGB | None = None  # plant color at season 1
    accent: RGB | None = None  # second color showing in noise patches (spots, dry grass, dark leaves)
    accent_cover: float = 0.0  # fraction of the region the accent covers, about
    grain: float = 0.0  # per-pixel noise amplitude
    fbm: float = 0.0  # smooth multi-octave noise amplitude
    rough: float = 0.0  # rough multi-octave noise amplitude
    streak: float = 0.0  # horizontal streak noise amplitude
    pattern: str | None = None  # key of _PATTERNS
    pattern_amount: float = 0.0
    sky: float = 0.0  # fraction of the sky's color seen in it (reflection, window view)
    haze: float = 1.0  # how much aerial perspective applies
    edge: float = 0.0  # darkening along its boundaries
    shade: float = 0.0  # top-lit vertical shading amplitude


# fmt: off
_MATERIALS: dict[str, _Material] = {
    # sky and weather
    "sky-other": _Material((0.5, 0.6, 0.8), fbm=0.03, sky=1.0, haze=0.5),
    "clouds": _Material((0.96, 0.96, 0.96), fbm=0.2, grain=0.02, sky=0.3, haze=0.6, shade=0.45),
    "fog": _Material((0.9, 0.9, 0.92), fbm=0.12, sky=0.55),
    # land forms and plants (summer, autumn, winter colors)
    "mountain": _Material((0.44, 0.42, 0.42), autumn=(0.5, 0.42, 0.36), winter=(0.78, 0.8, 0.84),
                          accent=(0.3, 0.29, 0.3), accent_cover=0.35, rough=0.22, fbm=0.1, shade=0.35,
                          edge=0.05),
    "hill": _Material((0.36, 0.5, 0.26), autumn=(0.6, 0.46, 0.22), winter=(0.72, 0.72, 0.7),
                      accent=(0.28, 0.38, 0.2), accent_cover=0.3, fbm=0.15, grain=0.05, shade=0.2, edge=0.05),
    "tree": _Material((0.16, 0.36, 0.12), autumn=(0.78, 0.4, 0.1), winter=(0.36, 0.31, 0.27),
                      accent=(0.09, 0.22, 0.07), accent_cover=0.4, fbm=0.2, rough=0.2, grain=0.12, shade=0.4,
                      edge=0.15),
    "tree/conifer": _Material((0.1, 0.27, 0.14), autumn=(0.12, 0.26, 0.14), winter=(0.2, 0.28, 0.24),
                              accent=(0.06, 0.17, 0.09), accent_cover=0.4, rough=0.2, grain=0.15, shade=0.35,
                              edge=0.15),
    "tree/trunk": _Material((0.3, 0.21, 0.13), streak=0.1, grain=0.1, edge=0.15),
    "bush": _Material((0.2, 0.42, 0.15), autumn=(0.62, 0.3, 0.12), winter=(0.42, 0.35, 0.29),
                      accent=(0.12, 0.28, 0.09), accent_cover=0.4, fbm=0.2, grain=0.15, shade=0.4, edge=0.15),
    "grass": _Material((0.32, 0.55, 0.19), autumn=(0.62, 0.55, 0.26), winter=(0.63, 0.6, 0.5),
                       accent=(0.5, 0.6, 0.22), accent_cover=0.3, grain=0.22, fbm=0.12),
    "flower": _Material((0.88, 0.3, 0.45), autumn=(0.8, 0.45, 0.2), winter=(0.5, 0.45, 0.4),
                        accent=(0.97, 0.86, 0.2), accent_cover=0.5, grain=0.35, edge=0.05),
    "playingfield": _Material((0.3, 0.58, 0.25), autumn=(0.4, 0.55, 0.25), winter=(0.5, 0.58, 0.42),
                              grain=0.1, pattern="stripes", pattern_amount=0.07),
    "rock": _Material((0.5, 0.48, 0.45), accent=(0.36, 0.35, 0.33), accent_cover=0.3, rough=0.3, grain=0.08,
                      shade=0.35, edge=0.25),
    # water
    "sea": _Material((0.1, 0.3, 0.42), streak=0.22, grain=0.04, sky=0.55),
    "river": _Material((0.15, 0.32, 0.33), streak=0.25, grain=0.05, sky=0.45, edge=0.1),
    # grounds
    "sand": _Material((0.86, 0.77, 0.56), grain=0.1, fbm=0.08, streak=0.05),
    "snow": _Material((0.95, 0.96, 0.98), fbm=0.06, grain=0.03, sky=0.12),
    "dirt": _Material((0.5, 0.37, 0.24), accent=(0.4, 0.29, 0.19), accent_cover=0.35, grain=0.16, fbm=0.15),
    "gravel": _Material((0.56, 0.53, 0.49), grain=0.25, fbm=0.1, rough=0.1),
    "road": _Material((0.3, 0.3, 0.32), grain=0.1, fbm=0.08, edge=0.1),
    "road/marking": _Material((0.92, 0.9, 0.82), grain=0.1),
    "pavement": _Material((0.6, 0.58, 0.55), grain=0.1, pattern="tiles", pattern_amount=0.25),
    # structures
    "house": _Material((0.86, 0.79, 0.66), fbm=0.06, grain=0.04, edge=0.2),
    "house/roof": _Material((0.55, 0.2, 0.15), streak=0.12, grain=0.08, edge=0.2),
    "house/window": _Material((0.22, 0.26, 0.3), sky=0.35, edge=0.2),
    "house/door": _Material((0.36, 0.23, 0.14), streak=0.1, edge=0.2),
    "fence": _Material((0.56, 0.41, 0.26), streak=0.15, grain=0.08, edge=0.2),
    # indoor stuff
    "wall-other": _Material((0.87, 0.84, 0.77), fbm=0.04, grain=0.02),
    "wall-brick": _Material((0.64, 0.31, 0.22), grain=0.1, fbm=0.06, pattern="bricks", pattern_amount=0.45),
    "wall-concrete": _Material((0.66, 0.65, 0.62), fbm=0.12, grain=0.06),
    "wall-wood": _Material((0.62, 0.45, 0.28), streak=0.15, pattern="folds", pattern_amount=0.1),
    "floor-wood": _Material((0.6, 0.41, 0.24), streak=0.18, grain=0.04, pattern="planks",
                            pattern_amount=0.35),
    "floor-tile": _Material((0.82, 0.8, 0.75), grain=0.03, pattern="tiles", pattern_amount=0.35),
    "carpet": _Material((0.6, 0.22, 0.2), accent=(0.74, 0.58, 0.32), accent_cover=0.2, grain=0.25, fbm=0.1),
    "ceiling-other": _Material((0.93, 0.92, 0.89), fbm=0.03),
    "window-other": _Material((0.8, 0.85, 0.9), sky=0.9, fbm=0.02),
    "window-other/frame": _Material((0.92, 0.92, 0.9), grain=0.02, edge=0.15),
    "curtain": _Material((0.72, 0.62, 0.46), grain=0.05, pattern="folds", pattern_amount=0.3, edge=0.1),
    "table": _Material((0.52, 0.34, 0.2), streak=0.2, edge=0.15, shade=0.15),
    "table/frame": _Material((0.36, 0.23, 0.13), streak=0.1, edge=0.15),
    # things
    "person": _Material((0.2, 0.35, 0.62), grain=0.05, fbm=0.1, edge=0.2, shade=0.2),
    "person/skin": _Material((0.86, 0.66, 0.52), fbm=0.05, edge=0.2),
    "person/hair": _Material((0.2, 0.13, 0.08), grain=0.1, edge=0.2),
    "person/legs": _Material((0.2, 0.2, 0.26), grain=0.05, edge=0.2),
    "cow": _Material((0.42, 0.27, 0.17), accent=(0.93, 0.91, 0.86), accent_cover=0.4, grain=0.05, edge=0.2,
                     shade=0.25),
    "cow/dark": _Material((0.2, 0.14, 0.1), edge=0.2),
    "cow/muzzle": _Material((0.85, 0.65, 0.6), grain=0.05, edge=0.15),
    "horse": _Material((0.45, 0.27, 0.14), grain=0.05, fbm=0.1, edge=0.2, shade=0.3),
    "horse/dark": _Material((0.13, 0.09, 0.07), grain=0.1, edge=0.2),
    "horse/muzzle": _Material((0.3, 0.2, 0.14), grain=0.05, edge=0.1),
    "sheep": _Material((0.9, 0.88, 0.8), grain=0.3, fbm=0.1, edge=0.2, shade=0.3),
    "sheep/dark": _Material((0.18, 0.16, 0.15), edge=0.2),
    "dog": _Material((0.7, 0.5, 0.28), accent=(0.93, 0.9, 0.84), accent_cover=0.25, grain=0.1, edge=0.2,
                     shade=0.25),
    "dog/dark": _Material((0.35, 0.23, 0.13), edge=0.2),
    "dog/muzzle": _Material((0.9, 0.85, 0.76), grain=0.1, edge=0.1),
    "elephant": _Material((0.52, 0.5, 0.48), rough=0.15, grain=0.06, edge=0.2, shade=0.3),
    "elephant/dark": _Material((0.45, 0.42, 0.41), rough=0.15, edge=0.25),
    "eye": _Material((0.05, 0.04, 0.04)),
    "bird": _Material((0.18, 0.18, 0.2), edge=0.1),
    "boat": _Material((0.78, 0.2, 0.15), grain=0.04, edge=0.2, shade=0.2),
    "boat/sail": _Material((0.96, 0.95, 0.9), fbm=0.05, edge=0.1, shade=0.15),
    "boat/mast": _Material((0.35, 0.25, 0.17), edge=0.1),
    "car": _Material((0.72, 0.12, 0.1), fbm=0.04, edge=0.2, shade=0.25),
    "car/window": _Material((0.25, 0.3, 0.35), sky=0.4, edge=0.2),
    "car/wheel": _Material((0.08, 0.08, 0.09), grain=0.05, edge=0.1),
    "chair": _Material((0.47, 0.31, 0.18), streak=0.15, edge=0.2, shade=0.15),
    "couch": _Material((0.3, 0.4, 0.56), grain=0.12, fbm=0.08, edge=0.2, shade=0.2),
    "couch/cushion": _Material((0.38, 0.48, 0.62), grain=0.12, edge=0.25, shade=0.2),
    "potted plant": _Material((0.2, 0.46, 0.16), accent=(0.1, 0.28, 0.08), accent_cover=0.4, grain=0.15,
                              fbm=0.2, edge=0.15, shade=0.3),
    "potted plant/pot": _Material((0.66, 0.36, 0.22), grain=0.05, edge=0.2, shade=0.2),
    "teddy bear": _Material((0.66, 0.45, 0.24), grain=0.3, fbm=0.1, edge=0.2, shade=0.3),
    "teddy bear/muzzle": _Material((0.86, 0.73, 0.55), grain=0.2, edge=0.15),
}
# fmt: on
# Side walls of a room are the same wall in less light.
_MATERIALS |= {
    f"{wall}/side": replace(_MATERIALS[wall], color=tuple(0.82 * c for c in _MATERIALS[wall].color))
    for wall in ("wall-other", "wall-brick", "wall-concrete", "wall-wood")
}

_UNLABELED_MATERIAL = _Material((0.5, 0.5, 0.5))


# ---------------------------------------------------------------------------------------------
# Rendering: lighting from the style, texture from the seed


@dataclass(frozen=True)
class _Light:
    zenith: np.ndarray  # [3] sky color overhead
    horizon: np.ndarray  # [3] sky color at the horizon
    sun: np.ndarray  # [3] direct light (its color times strength)
    ambient: np.ndarray  # [3] sky fill light
    lamp: np.ndarray  # [3] warm indoor lamp light (strong at night)
    shading: float  # strength of directional shading: low when overcast


# fmt: off
_DAYLIGHT_KEYS = (  # time_of_day, zenith, horizon, sun
    (0.0, (0.03, 0.05, 0.15), (0.1, 0.13, 0.25), (0.45, 0.52, 0.78)),  # night, moonlight
    (0.14, (0.08, 0.1, 0.27), (0.45, 0.33, 0.44), (0.5, 0.4, 0.48)),  # blue hour
    (0.27, (0.2, 0.24, 0.5), (0.97, 0.6, 0.42), (0.92, 0.58, 0.4)),  # dawn / dusk glow
    (0.42, (0.32, 0.46, 0.76), (0.97, 0.85, 0.68), (1.0, 0.86, 0.68)),  # golden hour
    (0.65, (0.3, 0.52, 0.88), (0.78, 0.86, 0.95), (1.0, 0.96, 0.9)),  # morning, afternoon
    (1.0, (0.24, 0.47, 0.9), (0.72, 0.84, 0.96), (1.0, 1.0, 0.97)),  # noon
)
# fmt: on
_COOL, _WARM = np.array((0.85, 0.94, 1.15)), np.array((1.15, 0.96, 0.76))


def _daylight(t: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Zenith, horizon and sun colors at time of day t, interpolated between key frames."""
    times = [key[0] for key in _DAYLIGHT_KEYS]
    return tuple(
        np.array([np.interp(t, times, [key[column][c] for key in _DAYLIGHT_KEYS]) for c in range(3)])
        for column in (1, 2, 3)
    )


def _light(style: dict[str, float]) -> _Light:
    t, overcast = style["time_of_day"], style["overcast"]
    twilight_glow = max(0.0, 1.0 - abs(t - 0.3) / 0.2)  # low sun: temperature matters most
    temperature = _COOL + (_WARM - _COOL) * style["warmth"]
    zenith, horizon, sun = _daylight(t)
    zenith = zenith * temperature**0.3
    horizon = horizon * temperature ** (0.6 + 1.2 * twilight_glow)
    sun = sun * temperature ** (0.5 + twilight_glow)
    # Overcast: a grey sky of about the same brightness, weaker direct light, more fill.
    grey = np.array((0.92, 0.94, 0.97)) * 0.85
    zenith = zenith + (grey * zenith.mean() * 1.3 - zenith) * 0.85 * overcast
    horizon = horizon + (grey * horizon.mean() - horizon) * 0.85 * overcast
    sun = sun * (1 - 0.6 * overcast)
    ambient = (zenith + horizon) * (0.22 + 0.2 * overcast)
    daylight = float(np.clip((t - 0.1) / 0.35, 0, 1))
    lamp = np.array((1.0, 0.8, 0.58)) * (0.25 + 0.45 * (1 - daylight))
    return _Light(zenith, horizon, sun * 0.78, ambient, lamp, 1 - 0.8 * overcast)


def _palette_matrix(style: dict[str, float]) -> np.ndarray:
    """[3, 3] linear map applying the style's hue rotation and saturation in YIQ space."""
    rgb_to_yiq = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    angle = math.radians((style["hue_shift"] - 0.5) * 60)
    saturation = float(np.interp(style["saturation"], (0, 0.5, 1), (0.3, 1.0, 1.6)))
    cos, sin = math.cos(angle) * saturation, math.sin(angle) * saturation
    adjust = np.array([[1, 0, 0], [0, cos, -sin], [0, sin, cos]])
    return np.linalg.inv(rgb_to_yiq) @ adjust @ rgb_to_yiq


def _material_colors(materials: list[_Material], season: float) -> tuple[np.ndarray, np.ndarray]:
    """Base and accent colors [M, 3] under white light; plants follow the season."""
    summer = np.array([m.color for m in materials])
    autumn = np.array([m.autumn or m.color for m in materials])
    winter = np.array([m.winter or m.color for m in materials])
    weights = np.interp(season, (0, 0.5, 1), (1, 0, 0)), np.interp(season, (0, 0.5, 1), (0, 1, 0))
    base = summer * weights[0] + autumn * weights[1] + winter * (1 - weights[0] - weights[1])
    accent = np.array([m.accent or m.color for m in materials]) * base / summer  # accents age with the plant
    return base, accent


_MATERIAL_SCALARS = ("grain", "fbm", "rough", "streak", "pattern_amount", "sky", "haze", "edge", "shade")


def _material_table(materials: list[_Material]) -> dict[str, list[float]]:
    """Per-material scalars by name, plus `pattern_id` and `accent_threshold` (the accent shows where
    the fbm noise exceeds it)."""
    table = {name: [getattr(m, name) for m in materials] for name in _MATERIAL_SCALARS}
    table["pattern_id"] = [_PATTERN_IDS.get(m.pattern, 0) for m in materials]
    table["accent_threshold"] = [1.1 - 2.5 * m.accent_cover if m.accent else 99.0 for m in materials]
    return table


def _region_table(regions: tuple[Region, ...]) -> np.ndarray:
    """[4, R + 1] per region: depth, on_ground, top and bottom y (for shading); the last column serves
    unpainted pixels."""
    rows = []
    for region in regions:
        bounds = [_bounds(part.shape) for part in region.parts]
        rows.append((region.depth, region.on_ground, min(b[1] for b in bounds), max(b[3] for b in bounds)))
    return np.array([*rows, (0.0, 0.0, 0.0, 1.0)], dtype=np.float32).T


def _pixel_bilinear(grid: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize a grid of knots spanning the frame to [height, width] by bilinear interpolation."""

    def axis_weights(cells: int, size: int) -> tuple[np.ndarray, np.ndarray]:
        position = (np.arange(size, dtype=np.float32) + 0.5) * (cells / size)
        index = np.minimum(position.astype(np.intp), cells - 1)
        return index, position - index

    rows, row_t = axis_weights(grid.shape[0] - 1, height)
    cols, col_t = axis_weights(grid.shape[1] - 1, width)
    by_rows = grid[rows] * (1 - row_t[:, None]) + grid[rows + 1] * row_t[:, None]  # [H, gw]
    return by_rows[:, cols] * (1 - col_t) + by_rows[:, cols + 1] * col_t  # [H, W]


def _fbm(rng: np.random.Generator, height: int, width: int, cells: int, persistence: float) -> np.ndarray:
    """Multi-octave value noise, about unit variance: a random grid refined by halving until
    cells reach about 2 pixels, with noise of amplitude persistence**octave added at each level."""
    longest = max(height, width)
    grid = rng.standard_normal(
        (max(1, round(cells * height / longest)) + 1, max(1, round(cells * width / longest)) + 1),
        dtype=np.float32,
    )
    variance, amplitude = 1.0, 1.0
    while (grid.shape[0] - 1) * 4 <= height or (grid.shape[1] - 1) * 4 <= width:
        finer = np.empty((2 * grid.shape[0] - 1, 2 * grid.shape[1] - 1), dtype=np.float32)
        finer[::2, ::2] = grid
        finer[1::2, ::2] = (grid[:-1] + grid[1:]) * 0.5
        finer[:, 1::2] = (finer[:, :-1:2] + finer[:, 2::2]) * 0.5
        amplitude *= persistence
        variance += amplitude**2
        grid = finer + amplitude * rng.standard_normal(finer.shape, dtype=np.float32)
    # Bilinear interpolation of independent knots keeps (2/3)^2 of their variance on average.
    return _pixel_bilinear(grid, height, width) / np.float32(math.sqrt(variance * 4 / 9))


@dataclass(frozen=True, eq=False)
class _Noise:
    grain: np.ndarray  # [H, W] per-pixel noise
    fbm: np.ndarray  # [H, W] smooth fractal noise
    rough: np.ndarray  # [H, W] rough fractal noise
    streak: np.ndarray  # [H, W] horizontal streaks


def _noise(seed: int, height: int, width: int) -> _Noise:
    """The texture noise of a seed; independent of layout and style."""
    rngs = [np.random.default_rng([seed, _TEXTURE_STREAM, field]) for field in range(4)]
    streak_grid = rngs[3].standard_normal((max(2, height // 3) + 1, 7), dtype=np.float32)
    return _Noise(
        grain=rngs[0].random((height, width), dtype=np.float32) * 2 - 1,
        fbm=_fbm(rngs[1], height, width, 3, 0.5),
        rough=_fbm(rngs[2], height, width, 4, 0.75),
        streak=_pixel_bilinear(streak_grid, height, width),
    )


def _ground_coordinates(height: int, width: int, layout: Layout) -> tuple[np.ndarray, np.ndarray]:
    """Ground-plane coordinates (sideways u, depth z) of every pixel below the horizon."""
    ys = (np.arange(height, dtype=np.float32)[:, None] + 0.5) / height
    xs = (np.arange(width, dtype=np.float32)[None, :] + 0.5) / width
    z = 1 / np.maximum(ys - layout.horizon, 0.02)  # [H, 1]
    return (xs - layout.vanishing_x) * z, z  # [H, W], [H, 1]


def _bricks(height: int, width: int, layout: Layout) -> np.ndarray:
    ys = (np.arange(height, dtype=np.float32)[:, None] + 0.5) / height * 22
    xs = (np.arange(width, dtype=np.float32)[None, :] + 0.5) / width * 9
    row = np.floor(ys)
    mortar = (ys - row < 0.2) | (((xs + 0.5 * (row % 2)) % 1) < 0.07)
    return np.where(mortar, np.float32(-1), np.float32(0.15))


def _planks(height: int, width: int, layout: Layout) -> np.ndarray:
    u, z = _ground_coordinates(height, width, layout)
    joints = ((u * 4) % 1 < 0.1) | (((z * 0.4 + np.floor(u * 4) * 0.37) % 1) < 0.03)
    return np.where(joints, np.float32(-1), np.float32(0.1))


def _tiles(height: int, width: int, layout: Layout) -> np.ndarray:
    u, z = _ground_coordinates(height, width, layout)
    grout = ((u * 3) % 1 < 0.06) | ((z * 0.3) % 1 < 0.06)
    return np.where(grout, np.float32(-1), np.float32(0.1))


def _stripes(height: int, width: int, layout: Layout) -> np.ndarray:
    u, _ = _ground_coordinates(height, width, layout)
    return np.where((u * 1.5) % 1 < 0.5, np.float32(1), np.float32(-1))


def _folds(height: int, width: int, layout: Layout) -> np.ndarray:
    xs = (np.arange(width, dtype=np.float32) + 0.5) / width
    return np.broadcast_to(np.cos(xs * np.float32(2 * math.pi * 28)), (height, width))


_PATTERNS: dict[str, Callable[[int, int, Layout], np.ndarray]] = {
    "bricks": _bricks,
    "planks": _planks,
    "tiles": _tiles,
    "stripes": _stripes,
    "folds": _folds,
}
_PATTERN_IDS = {name: index + 1 for index, name in enumerate(_PATTERNS)}  # 0: no pattern


def _boundaries(unit_map: np.ndarray) -> np.ndarray:
    """bool [H, W]: pixels with a 4-neighbor painted by another part."""
    edge = np.zeros(unit_map.shape, dtype=bool)
    vertical = unit_map[1:] != unit_map[:-1]
    horizontal = unit_map[:, 1:] != unit_map[:, :-1]
    edge[1:] |= vertical
    edge[:-1] |= vertical
    edge[:, 1:] |= horizontal
    edge[:, :-1] |= horizontal
    return edge


def _soften(image: np.ndarray) -> np.ndarray:
    """A [1, 2, 1] / 4 blur along both axes (edges replicated): soft image edges, crisp labels."""
    padded = np.pad(image, ((1, 1), (0, 0), (0, 0)), mode="edge")
    image = padded[:-2] * 0.25 + padded[1:-1] * 0.5 + padded[2:] * 0.25
    padded = np.pad(image, ((0, 0), (1, 1), (0, 0)), mode="edge")
    return padded[:, :-2] * 0.25 + padded[:, 1:-1] * 0.5 + padded[:, 2:] * 0.25


def render(layout: Layout, style: Style, seed: int, height: int, width: int) -> np.ndarray:
    """The photo of `layout` in `style` with texture noise `seed`: uint8 [height, width, 3].

    Geometry comes from the layout only, every color and light from the style only, and the
    noise from the seed only, so swapping any one of them keeps the other two exact.
    """
    painted = _paint(layout.regions, height, width)
    s = style.as_dict()
    light = _light(s)
    palette = _palette_matrix(s).T.astype(np.float32)  # right-multiplies RGB rows
    texture = float(np.interp(s["texture"], (0, 1), (0.4, 1.4)))

    # Tables per material and per region; an extra last entry serves unpainted pixels.
    parts = [part for region in layout.regions for part in region.parts]
    names = sorted({part.material for part in parts})
    materials = [_MATERIALS[name] for name in names] + [_UNLABELED_MATERIAL]
    unit_material = np.array([names.index(part.material) for part in parts] + [len(names)], dtype=np.intp)
    unit_region = np.append(painted.unit_region, len(layout.regions))
    material_map = unit_material[painted.unit_map]  # [H, W]
    region_map = unit_region[painted.unit_map]  # [H, W]
    table = _material_table(materials)
    per_pixel = np.take(np.array(list(table.values()), dtype=np.float32), material_map, axis=1)  # [K, H, W]
    m = dict(zip(table, per_pixel, strict=True))
    depth, on_ground, top, bottom = np.take(_region_table(layout.regions), region_map, axis=1)  # [H, W] each

    illumination = light.sun + light.ambient
    if layout.kind == "indoor":
        illumination = illumination * 0.7 + light.lamp
    base, accent = (
        ((colors * illumination) @ palette).astype(np.float32) for colors in _material_colors(materials, s["season"])
    )
    noise = _noise(seed, height, width)
    ys = (np.arange(height, dtype=np.float32) + 0.5) / height  # [H]

    # Luminance: texture, top-lit shading, darker boundaries.
    texture_map = (
        m["grain"] * noise.grain + m["fbm"] * noise.fbm + m["rough"] * noise.rough + m["streak"] * noise.streak
    )
    for name, pattern_id in _PATTERN_IDS.items():
        if any(material.pattern == name for material in materials):
            pattern = _PATTERNS[name](height, width, layout)
            texture_map += np.where(m["pattern_id"] == pattern_id, pattern * m["pattern_amount"], 0)
    relative_height = np.clip((ys[:, None] - top) / np.maximum(bottom - top, 1e-3), 0, 1)
    luminance = 1 + texture * texture_map
    luminance *= 1 + m["shade"] * light.shading * (0.4 - relative_height)
    luminance *= 1 - m["edge"] * _boundaries(painted.unit_map)

    # Color: base with accent patches, then the sky seen or mirrored, then haze toward the horizon's color.
    accent_weight = np.clip((noise.fbm - m["accent_threshold"]) * 2.5, 0, 1)[..., None]  # [H, W, 1]
    color = base[material_map]  # [H, W, 3]
    color += (accent[material_map] - color) * accent_weight
    sky_t = np.clip(np.abs(ys - layout.horizon) / max(layout.horizon, 0.3), 0, 1) ** 0.6  # [H]
    sky_rows = ((light.horizon + (light.zenith - light.horizon) * sky_t[:, None]) @ palette).astype(np.float32)
    color += (sky_rows[:, None, :] - color) * m["sky"][..., None]
    color *= luminance[..., None]
    depth = np.where(on_ground > 0, _ground_depth(ys, layout.horizon)[:, None].astype(np.float32), depth)
    haze_color = ((light.horizon * 0.8 + light.horizon.mean() * 0.3) @ palette).astype(np.float32)
    haze_weight = np.clip((0.12 + 0.8 * s["haze"]) * depth * m["haze"], 0, 1)[..., None]
    color += (haze_color - color) * haze_weight

    exposure = float(np.interp(s["exposure"], (0, 0.5, 1), (0.8, 1.0, 1.3)))
    contrast = float(np.interp(s["contrast"], (0, 0.5, 1), (0.7, 1.0, 1.35)))
    color = (color * exposure - 0.45) * contrast + 0.45
    return (np.clip(_soften(color), 0, 1) * 255 + 0.5).astype(np.uint8)
