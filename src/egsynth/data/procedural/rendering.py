"""Rendering: lighting and palette from the style, texture from the seed, geometry from the layout."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from egsynth.data.procedural.geometry import Layout, Region, ground_depth, paint, shape_bounds
from egsynth.data.procedural.materials import MATERIALS, UNLABELED_MATERIAL, Material
from egsynth.data.procedural.style import Style
from egsynth.data.procedural.textures import PATTERN_IDS, PATTERNS, texture_noise


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


def _material_colors(materials: list[Material], season: float) -> tuple[np.ndarray, np.ndarray]:
    """Base and accent colors [M, 3] under white light; plants follow the season."""
    summer = np.array([m.color for m in materials])
    autumn = np.array([m.autumn or m.color for m in materials])
    winter = np.array([m.winter or m.color for m in materials])
    weights = np.interp(season, (0, 0.5, 1), (1, 0, 0)), np.interp(season, (0, 0.5, 1), (0, 1, 0))
    base = summer * weights[0] + autumn * weights[1] + winter * (1 - weights[0] - weights[1])
    accent = np.array([m.accent or m.color for m in materials]) * base / summer  # accents age with the plant
    return base, accent


_MATERIAL_SCALARS = ("grain", "fbm", "rough", "streak", "pattern_amount", "sky", "haze", "edge", "shade")


def _material_table(materials: list[Material]) -> dict[str, list[float]]:
    """Per-material scalars by name, plus `pattern_id` and `accent_threshold` (the accent shows where
    the fbm noise exceeds it)."""
    table = {name: [getattr(m, name) for m in materials] for name in _MATERIAL_SCALARS}
    table["pattern_id"] = [PATTERN_IDS.get(m.pattern, 0) for m in materials]
    table["accent_threshold"] = [1.1 - 2.5 * m.accent_cover if m.accent else 99.0 for m in materials]
    return table


def _region_table(regions: tuple[Region, ...]) -> np.ndarray:
    """[4, R + 1] per region: depth, on_ground, top and bottom y (for shading); the last column serves
    unpainted pixels."""
    rows = []
    for region in regions:
        bounds = [shape_bounds(part.shape) for part in region.parts]
        rows.append((region.depth, region.on_ground, min(b[1] for b in bounds), max(b[3] for b in bounds)))
    return np.array([*rows, (0.0, 0.0, 0.0, 1.0)], dtype=np.float32).T


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
    painted = paint(layout.regions, height, width)
    s = style.as_dict()
    light = _light(s)
    palette = _palette_matrix(s).T.astype(np.float32)  # right-multiplies RGB rows
    texture = float(np.interp(s["texture"], (0, 1), (0.4, 1.4)))

    # Tables per material and per region; an extra last entry serves unpainted pixels.
    parts = [part for region in layout.regions for part in region.parts]
    names = sorted({part.material for part in parts})
    materials = [MATERIALS[name] for name in names] + [UNLABELED_MATERIAL]
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
    noise = texture_noise(seed, height, width)
    ys = (np.arange(height, dtype=np.float32) + 0.5) / height  # [H]

    # Luminance: texture, top-lit shading, darker boundaries.
    texture_map = (
        m["grain"] * noise.grain + m["fbm"] * noise.fbm + m["rough"] * noise.rough + m["streak"] * noise.streak
    )
    for name, pattern_id in PATTERN_IDS.items():
        if any(material.pattern == name for material in materials):
            pattern = PATTERNS[name](height, width, layout)
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
    depth = np.where(on_ground > 0, ground_depth(ys, layout.horizon)[:, None].astype(np.float32), depth)
    haze_color = ((light.horizon * 0.8 + light.horizon.mean() * 0.3) @ palette).astype(np.float32)
    haze_weight = np.clip((0.12 + 0.8 * s["haze"]) * depth * m["haze"], 0, 1)[..., None]
    color += (haze_color - color) * haze_weight

    exposure = float(np.interp(s["exposure"], (0, 0.5, 1), (0.8, 1.0, 1.3)))
    contrast = float(np.interp(s["contrast"], (0, 0.5, 1), (0.7, 1.0, 1.35)))
    color = (color * exposure - 0.45) * contrast + 0.45
    return (np.clip(_soften(color), 0, 1) * 255 + 0.5).astype(np.uint8)
