"""Things (animals, people, vehicles, furniture): parts in a unit box (x forward to the right, y down),
placed into the frame as one region per instance."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from egsynth.data.procedural.geometry import (
    Blob,
    Box,
    Ellipse,
    Part,
    Polygon,
    Region,
    Shape,
    outline_waves,
    segment,
)


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
    parts = [Part(dark, segment(0.13, body_y - body_height * 0.3, 0.06, body_y + body_height * 0.5, 0.04, 0.025))]
    for x in (0.2, 0.32, 0.58, 0.7):
        parts.append(Part(dark if name == "sheep" else name, Box(x - leg_width / 2, body_y, x + leg_width / 2, 1.0)))
    if name == "sheep":
        parts.append(Part(name, Blob(0.45, body_y, 0.36, body_height / 2, outline_waves(rng, 0.06, 8))))
    else:
        parts.append(Part(name, Ellipse(0.45, body_y, 0.35, body_height / 2)))
    parts.append(Part(name, segment(0.66, body_y - body_height * 0.1, head_x - 0.04, head_y, 0.22, 0.1)))
    parts.append(Part(dark if name == "sheep" else name, Ellipse(head_x, head_y, head_size * 0.6, head_size * 0.45)))
    if name == "elephant":
        parts.append(Part(name, segment(head_x + 0.06, head_y, 0.97, 0.95, 0.09, 0.05)))
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
        Part("potted plant", Blob(0.5, 0.34, 0.46, 0.34, outline_waves(rng, 0.2, 7))),
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
        "horse": [segment(0.42, 0.12, 0.38, 0.0, 0.07, 0.02), segment(0.58, 0.12, 0.62, 0.0, 0.07, 0.02)],
        "elephant": [Ellipse(0.17, 0.42, 0.2, 0.27), Ellipse(0.83, 0.42, 0.2, 0.27)],
    }[name]
    parts = [Part(dark if name in ("dog", "sheep") else name, shape) for shape in ears]
    parts.append(Part(name, Ellipse(0.5, 1.0, 0.46, 0.42)))  # chest
    if name == "sheep":  # fleece around a dark face
        parts.append(Part(name, Blob(0.5, 0.22, 0.28, 0.16, outline_waves(rng, 0.1, 8))))
    parts.append(Part(dark if name == "sheep" else name, head))
    if name == "elephant":
        parts.append(Part(name, segment(0.5, 0.5, 0.5, 1.0, 0.2, 0.12)))
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
class ThingKind:
    build: Callable[[np.random.Generator], list[Part]]
    aspect: float  # width / height of its unit box, in frame units
    height: float  # frame height when standing at the bottom edge (a close-up starts from it)
    focus: tuple[float, float] = (0.5, 0.55)  # unit-box point a close-up centers on


# fmt: off
THING_KINDS: dict[str, ThingKind] = {
    "cow": ThingKind(_quadruped_builder("cow", body_height=0.45, leg_length=0.36, leg_width=0.08,
                                         head_size=0.2, neck_rise=0.02), aspect=1.5, height=0.32),
    "horse": ThingKind(_quadruped_builder("horse", body_height=0.34, leg_length=0.45, leg_width=0.06,
                                           head_size=0.22, neck_rise=0.2), aspect=1.2, height=0.42),
    "sheep": ThingKind(_quadruped_builder("sheep", body_height=0.55, leg_length=0.28, leg_width=0.06,
                                           head_size=0.2, neck_rise=0.02), aspect=1.35, height=0.22),
    "dog": ThingKind(_quadruped_builder("dog", body_height=0.36, leg_length=0.38, leg_width=0.07,
                                         head_size=0.26, neck_rise=0.12), aspect=1.25, height=0.2),
    "elephant": ThingKind(_quadruped_builder("elephant", body_height=0.55, leg_length=0.33, leg_width=0.13,
                                              head_size=0.34, neck_rise=0.0), aspect=1.3, height=0.6),
    "person": ThingKind(_person, aspect=0.36, height=0.55),
    "bird": ThingKind(_bird, aspect=2.0, height=0.05),
    "boat": ThingKind(_boat, aspect=1.1, height=0.3),
    "car": ThingKind(_car, aspect=2.2, height=0.3),
    "chair": ThingKind(_chair, aspect=0.6, height=0.45),
    "couch": ThingKind(_couch, aspect=2.0, height=0.45),
    "potted plant": ThingKind(_potted_plant, aspect=0.7, height=0.4),
    "teddy bear": ThingKind(_teddy_bear, aspect=0.85, height=0.25),
}
# fmt: on

PORTRAITS: dict[str, ThingKind] = {
    name: ThingKind(functools.partial(_portrait, name), aspect=1.0, height=1.0, focus=(0.5, 0.5))
    for name in ("dog", "cow", "sheep", "horse", "elephant")
}


def thing_region(
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
    kind = PORTRAITS[name] if portrait else THING_KINDS[name]
    width = height * kind.aspect
    flip = bool(rng.random() < 0.5)
    anchor_u = 1 - anchor[0] if flip else anchor[0]
    x0, y0 = x - anchor_u * width, y - anchor[1] * height
    parts = tuple(Part(p.material, _place(p.shape, x0, y0, width, height, flip)) for p in kind.build(rng))
    return Region(name, parts, depth)
