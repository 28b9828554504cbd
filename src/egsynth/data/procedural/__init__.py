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

The package, by what the code is about: `style` (the style space, `sample_style`), `geometry`
(shapes, regions, layouts, `rasterize`), `things`, `outdoor`, `indoor` and `layouts` (the layout
samplers, `sample_layout`), `materials`, `textures` and `rendering` (`render`).
"""

from egsynth.data.procedural.geometry import (
    Band,
    Blob,
    Box,
    Ellipse,
    LabelMap,
    Layout,
    Part,
    Polygon,
    Region,
    Shape,
    Strip,
    Thing,
    rasterize,
)
from egsynth.data.procedural.layouts import SCENE_KINDS, sample_layout
from egsynth.data.procedural.materials import RGB
from egsynth.data.procedural.rendering import render
from egsynth.data.procedural.style import STYLE_FIELDS, Style, sample_style

__all__ = [
    "RGB",
    "SCENE_KINDS",
    "STYLE_FIELDS",
    "Band",
    "Blob",
    "Box",
    "Ellipse",
    "LabelMap",
    "Layout",
    "Part",
    "Polygon",
    "Region",
    "Shape",
    "Strip",
    "Style",
    "Thing",
    "rasterize",
    "render",
    "sample_layout",
    "sample_style",
]
