"""Styles: a point of the continuous style space (time of day, season, haze, palette) per scene."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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


# Streams of `default_rng([seed, stream])`, so style, layout (`layouts`) and texture (`textures`) draws
# never collide.
STYLE_STREAM = 1
LAYOUT_STREAM = 2
TEXTURE_STREAM = 3


def sample_style(seed: int) -> Style:
    """A random style: mostly daylight, some golden hour and twilight, a few nights."""
    rng = np.random.default_rng([seed, STYLE_STREAM])
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
