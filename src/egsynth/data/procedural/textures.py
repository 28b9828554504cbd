"""Texture noise from the seed alone, and the regular patterns (bricks, planks, tiles, stripes, folds)
some materials carry."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from egsynth.data.procedural.geometry import Layout
from egsynth.data.procedural.style import TEXTURE_STREAM


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
class Noise:
    grain: np.ndarray  # [H, W] per-pixel noise
    fbm: np.ndarray  # [H, W] smooth fractal noise
    rough: np.ndarray  # [H, W] rough fractal noise
    streak: np.ndarray  # [H, W] horizontal streaks


def texture_noise(seed: int, height: int, width: int) -> Noise:
    """The texture noise of a seed; independent of layout and style."""
    rngs = [np.random.default_rng([seed, TEXTURE_STREAM, field]) for field in range(4)]
    streak_grid = rngs[3].standard_normal((max(2, height // 3) + 1, 7), dtype=np.float32)
    return Noise(
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


PATTERNS: dict[str, Callable[[int, int, Layout], np.ndarray]] = {
    "bricks": _bricks,
    "planks": _planks,
    "tiles": _tiles,
    "stripes": _stripes,
    "folds": _folds,
}
PATTERN_IDS = {name: index + 1 for index, name in enumerate(PATTERNS)}  # 0: no pattern
