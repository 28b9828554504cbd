"""Materials: base colors and texture character per category (or category part)."""

from __future__ import annotations

from dataclasses import dataclass, replace

RGB = tuple[float, float, float]


@dataclass(frozen=True)
class Material:
    color: RGB  # sRGB base color under white daylight (summer for plants)
    autumn: RGB | None = None  # plant color at season 0.5 (None: no seasonal change)
    winter: RGB | None = None  # plant color at season 1
    accent: RGB | None = None  # second color showing in noise patches (spots, dry grass, dark leaves)
    accent_cover: float = 0.0  # fraction of the region the accent covers, about
    grain: float = 0.0  # per-pixel noise amplitude
    fbm: float = 0.0  # smooth multi-octave noise amplitude
    rough: float = 0.0  # rough multi-octave noise amplitude
    streak: float = 0.0  # horizontal streak noise amplitude
    pattern: str | None = None  # key of textures.PATTERNS
    pattern_amount: float = 0.0
    sky: float = 0.0  # fraction of the sky's color seen in it (reflection, window view)
    haze: float = 1.0  # how much aerial perspective applies
    edge: float = 0.0  # darkening along its boundaries
    shade: float = 0.0  # top-lit vertical shading amplitude


# fmt: off
MATERIALS: dict[str, Material] = {
    # sky and weather
    "sky-other": Material((0.5, 0.6, 0.8), fbm=0.03, sky=1.0, haze=0.5),
    "clouds": Material((0.96, 0.96, 0.96), fbm=0.2, grain=0.02, sky=0.3, haze=0.6, shade=0.45),
    "fog": Material((0.9, 0.9, 0.92), fbm=0.12, sky=0.55),
    # land forms and plants (summer, autumn, winter colors)
    "mountain": Material((0.44, 0.42, 0.42), autumn=(0.5, 0.42, 0.36), winter=(0.78, 0.8, 0.84),
                          accent=(0.3, 0.29, 0.3), accent_cover=0.35, rough=0.22, fbm=0.1, shade=0.35,
                          edge=0.05),
    "hill": Material((0.36, 0.5, 0.26), autumn=(0.6, 0.46, 0.22), winter=(0.72, 0.72, 0.7),
                      accent=(0.28, 0.38, 0.2), accent_cover=0.3, fbm=0.15, grain=0.05, shade=0.2, edge=0.05),
    "tree": Material((0.16, 0.36, 0.12), autumn=(0.78, 0.4, 0.1), winter=(0.36, 0.31, 0.27),
                      accent=(0.09, 0.22, 0.07), accent_cover=0.4, fbm=0.2, rough=0.2, grain=0.12, shade=0.4,
                      edge=0.15),
    "tree/conifer": Material((0.1, 0.27, 0.14), autumn=(0.12, 0.26, 0.14), winter=(0.2, 0.28, 0.24),
                              accent=(0.06, 0.17, 0.09), accent_cover=0.4, rough=0.2, grain=0.15, shade=0.35,
                              edge=0.15),
    "tree/trunk": Material((0.3, 0.21, 0.13), streak=0.1, grain=0.1, edge=0.15),
    "bush": Material((0.2, 0.42, 0.15), autumn=(0.62, 0.3, 0.12), winter=(0.42, 0.35, 0.29),
                      accent=(0.12, 0.28, 0.09), accent_cover=0.4, fbm=0.2, grain=0.15, shade=0.4, edge=0.15),
    "grass": Material((0.32, 0.55, 0.19), autumn=(0.62, 0.55, 0.26), winter=(0.63, 0.6, 0.5),
                       accent=(0.5, 0.6, 0.22), accent_cover=0.3, grain=0.22, fbm=0.12),
    "flower": Material((0.88, 0.3, 0.45), autumn=(0.8, 0.45, 0.2), winter=(0.5, 0.45, 0.4),
                        accent=(0.97, 0.86, 0.2), accent_cover=0.5, grain=0.35, edge=0.05),
    "playingfield": Material((0.3, 0.58, 0.25), autumn=(0.4, 0.55, 0.25), winter=(0.5, 0.58, 0.42),
                              grain=0.1, pattern="stripes", pattern_amount=0.07),
    "rock": Material((0.5, 0.48, 0.45), accent=(0.36, 0.35, 0.33), accent_cover=0.3, rough=0.3, grain=0.08,
                      shade=0.35, edge=0.25),
    # water
    "sea": Material((0.1, 0.3, 0.42), streak=0.22, grain=0.04, sky=0.55),
    "river": Material((0.15, 0.32, 0.33), streak=0.25, grain=0.05, sky=0.45, edge=0.1),
    # grounds
    "sand": Material((0.86, 0.77, 0.56), grain=0.1, fbm=0.08, streak=0.05),
    "snow": Material((0.95, 0.96, 0.98), fbm=0.06, grain=0.03, sky=0.12),
    "dirt": Material((0.5, 0.37, 0.24), accent=(0.4, 0.29, 0.19), accent_cover=0.35, grain=0.16, fbm=0.15),
    "gravel": Material((0.56, 0.53, 0.49), grain=0.25, fbm=0.1, rough=0.1),
    "road": Material((0.3, 0.3, 0.32), grain=0.1, fbm=0.08, edge=0.1),
    "road/marking": Material((0.92, 0.9, 0.82), grain=0.1),
    "pavement": Material((0.6, 0.58, 0.55), grain=0.1, pattern="tiles", pattern_amount=0.25),
    # structures
    "house": Material((0.86, 0.79, 0.66), fbm=0.06, grain=0.04, edge=0.2),
    "house/roof": Material((0.55, 0.2, 0.15), streak=0.12, grain=0.08, edge=0.2),
    "house/window": Material((0.22, 0.26, 0.3), sky=0.35, edge=0.2),
    "house/door": Material((0.36, 0.23, 0.14), streak=0.1, edge=0.2),
    "fence": Material((0.56, 0.41, 0.26), streak=0.15, grain=0.08, edge=0.2),
    # indoor stuff
    "wall-other": Material((0.87, 0.84, 0.77), fbm=0.04, grain=0.02),
    "wall-brick": Material((0.64, 0.31, 0.22), grain=0.1, fbm=0.06, pattern="bricks", pattern_amount=0.45),
    "wall-concrete": Material((0.66, 0.65, 0.62), fbm=0.12, grain=0.06),
    "wall-wood": Material((0.62, 0.45, 0.28), streak=0.15, pattern="folds", pattern_amount=0.1),
    "floor-wood": Material((0.6, 0.41, 0.24), streak=0.18, grain=0.04, pattern="planks",
                            pattern_amount=0.35),
    "floor-tile": Material((0.82, 0.8, 0.75), grain=0.03, pattern="tiles", pattern_amount=0.35),
    "carpet": Material((0.6, 0.22, 0.2), accent=(0.74, 0.58, 0.32), accent_cover=0.2, grain=0.25, fbm=0.1),
    "ceiling-other": Material((0.93, 0.92, 0.89), fbm=0.03),
    "window-other": Material((0.8, 0.85, 0.9), sky=0.9, fbm=0.02),
    "window-other/frame": Material((0.92, 0.92, 0.9), grain=0.02, edge=0.15),
    "curtain": Material((0.72, 0.62, 0.46), grain=0.05, pattern="folds", pattern_amount=0.3, edge=0.1),
    "table": Material((0.52, 0.34, 0.2), streak=0.2, edge=0.15, shade=0.15),
    "table/frame": Material((0.36, 0.23, 0.13), streak=0.1, edge=0.15),
    # things
    "person": Material((0.2, 0.35, 0.62), grain=0.05, fbm=0.1, edge=0.2, shade=0.2),
    "person/skin": Material((0.86, 0.66, 0.52), fbm=0.05, edge=0.2),
    "person/hair": Material((0.2, 0.13, 0.08), grain=0.1, edge=0.2),
    "person/legs": Material((0.2, 0.2, 0.26), grain=0.05, edge=0.2),
    "cow": Material((0.42, 0.27, 0.17), accent=(0.93, 0.91, 0.86), accent_cover=0.4, grain=0.05, edge=0.2,
                     shade=0.25),
    "cow/dark": Material((0.2, 0.14, 0.1), edge=0.2),
    "cow/muzzle": Material((0.85, 0.65, 0.6), grain=0.05, edge=0.15),
    "horse": Material((0.45, 0.27, 0.14), grain=0.05, fbm=0.1, edge=0.2, shade=0.3),
    "horse/dark": Material((0.13, 0.09, 0.07), grain=0.1, edge=0.2),
    "horse/muzzle": Material((0.3, 0.2, 0.14), grain=0.05, edge=0.1),
    "sheep": Material((0.9, 0.88, 0.8), grain=0.3, fbm=0.1, edge=0.2, shade=0.3),
    "sheep/dark": Material((0.18, 0.16, 0.15), edge=0.2),
    "dog": Material((0.7, 0.5, 0.28), accent=(0.93, 0.9, 0.84), accent_cover=0.25, grain=0.1, edge=0.2,
                     shade=0.25),
    "dog/dark": Material((0.35, 0.23, 0.13), edge=0.2),
    "dog/muzzle": Material((0.9, 0.85, 0.76), grain=0.1, edge=0.1),
    "elephant": Material((0.52, 0.5, 0.48), rough=0.15, grain=0.06, edge=0.2, shade=0.3),
    "elephant/dark": Material((0.45, 0.42, 0.41), rough=0.15, edge=0.25),
    "eye": Material((0.05, 0.04, 0.04)),
    "bird": Material((0.18, 0.18, 0.2), edge=0.1),
    "boat": Material((0.78, 0.2, 0.15), grain=0.04, edge=0.2, shade=0.2),
    "boat/sail": Material((0.96, 0.95, 0.9), fbm=0.05, edge=0.1, shade=0.15),
    "boat/mast": Material((0.35, 0.25, 0.17), edge=0.1),
    "car": Material((0.72, 0.12, 0.1), fbm=0.04, edge=0.2, shade=0.25),
    "car/window": Material((0.25, 0.3, 0.35), sky=0.4, edge=0.2),
    "car/wheel": Material((0.08, 0.08, 0.09), grain=0.05, edge=0.1),
    "chair": Material((0.47, 0.31, 0.18), streak=0.15, edge=0.2, shade=0.15),
    "couch": Material((0.3, 0.4, 0.56), grain=0.12, fbm=0.08, edge=0.2, shade=0.2),
    "couch/cushion": Material((0.38, 0.48, 0.62), grain=0.12, edge=0.25, shade=0.2),
    "potted plant": Material((0.2, 0.46, 0.16), accent=(0.1, 0.28, 0.08), accent_cover=0.4, grain=0.15,
                              fbm=0.2, edge=0.15, shade=0.3),
    "potted plant/pot": Material((0.66, 0.36, 0.22), grain=0.05, edge=0.2, shade=0.2),
    "teddy bear": Material((0.66, 0.45, 0.24), grain=0.3, fbm=0.1, edge=0.2, shade=0.3),
    "teddy bear/muzzle": Material((0.86, 0.73, 0.55), grain=0.2, edge=0.15),
}
# fmt: on
# Side walls of a room are the same wall in less light.
MATERIALS |= {
    f"{wall}/side": replace(MATERIALS[wall], color=tuple(0.82 * c for c in MATERIALS[wall].color))
    for wall in ("wall-other", "wall-brick", "wall-concrete", "wall-wood")
}

UNLABELED_MATERIAL = Material((0.5, 0.5, 0.5))
