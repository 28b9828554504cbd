"""Where one output pixel p of the demo's synthesis drew its style from (`egsynth demo`, a click on the output).

At each MSCA scale, the channel attention β(p) over the K maps (Eq. 7), each map spread over the exemplar by its
spatial attention α_k (Eq. 4): the transfer F_x1 = Ṽ β, Ṽ = F_x2 α^T of Eq. 5-8 that appendix B (Fig. 10) sums
over a class, for a single pixel; with the share feature masking (Eq. 6) lets through, the exemplar classes it
falls on, and Fig. 6's heat map over the exemplar.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from einops import einsum
from matplotlib import colormaps

from egsynth.evaluation.figures import HEAT_MAP
from egsynth.models.msca import AttentionRecord
from egsynth.synthesis import ExemplarInput, TargetInput

HEAT_OPACITY = 0.6
"""Opacity of the heat map over the gray exemplar, as in Fig. 6 (`figures.attention_maps`)."""

LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _cell(record: AttentionRecord, y: int, x: int, size: tuple[int, int]) -> tuple[int, int]:
    """The position of β's grid [H1_i, W1_i] that covers output pixel (y, x) of an H1 x W1 target."""
    height, width = record.beta.shape[-2:]
    return y * height // size[0], x * width // size[1]


def pixel_attention(record: AttentionRecord, y: int, x: int, size: tuple[int, int]) -> np.ndarray:
    """w(q) = Σ_k β_k(p) α_k(q) over the exemplar positions q of one scale's α [H2_i, W2_i], for output pixel
    p = (y, x) of an H1 x W1 target (`size`): where p's aligned features F_x1(p) were pooled from (Eq. 5, 8).

    For MSCA it sums to 1, each α_k over the exemplar (Eq. 4) and β(p) over the K maps (Eq. 7). The gate of
    Eq. 6 is left out, as in `evaluation.guidance.label_match_mass`: it scales what a map carries, not where it
    looks (`carried_share` gives it). The record holds one pair (batch of 1)."""
    row, col = _cell(record, y, x, size)
    beta = record.beta[0, :, row, col].float()  # [K]
    return einsum(beta, record.alpha[0].float(), "k, k h w -> h w").cpu().numpy()  # [H2_i, W2_i]


def carried_share(record: AttentionRecord, y: int, x: int, size: tuple[int, int]) -> float:
    """Σ_k g_k β_k(p): the share of the pooled exemplar features that feature masking (Eq. 6) lets reach p."""
    row, col = _cell(record, y, x, size)
    beta = record.beta[0, :, row, col].float()  # [K]
    return float(beta.sum() if record.gate is None else (record.gate[0].float() * beta).sum())


def class_shares(weights: np.ndarray, exemplar_labels: np.ndarray) -> dict[int, float]:
    """How much of w [h, w] falls on each exemplar class, largest first: the labels uint8 [H2, W2] taken at w's
    grid by nearest neighbour, as MSCA's inputs are (`features.resize_labels`); UNLABELED_INDEX for the rest."""
    labels = torch.from_numpy(exemplar_labels.astype(np.float32))[None, None]  # [1, 1, H2, W2]
    on_grid = F.interpolate(labels, size=weights.shape, mode="nearest")[0, 0].long().numpy()  # [h, w]
    mass = np.bincount(on_grid.ravel(), weights=weights.ravel().astype(np.float64), minlength=256)  # [256]
    order = np.argsort(-mass, kind="stable")
    return {int(index): float(mass[index]) for index in order if mass[index] > 0}


def heat_overlay(image: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The exemplar uint8 [H2, W2, 3] in gray under w [h, w] scaled to its maximum, in Fig. 6's heat map colors;
    each cell of w's grid covers its block of exemplar pixels (nearest), so a coarse scale shows its coarseness."""
    height, width = image.shape[:2]
    peak = float(weights.max())
    heat = torch.from_numpy(weights / peak if peak > 0 else np.zeros_like(weights)).float()[None, None]  # [1, 1, h, w]
    cells = F.interpolate(heat, size=(height, width), mode="nearest")[0, 0].numpy()  # [H2, W2]
    colored = colormaps[HEAT_MAP](cells)[..., :3]  # [H2, W2, 3] in [0, 1]
    gray = (image.astype(np.float32) @ LUMA / 255)[..., None]  # [H2, W2, 1]
    blended = (1 - HEAT_OPACITY) * gray + HEAT_OPACITY * colored
    return np.round(blended * 255).astype(np.uint8)


@dataclass(frozen=True)
class ScaleAttention:
    """Where a pixel drew its style from at one MSCA scale."""

    scale: int  # i, 0 the finest
    weights: np.ndarray  # w [H2_i, W2_i], `pixel_attention`
    overlay: np.ndarray  # uint8 [H2, W2, 3], `heat_overlay`
    carried: float  # `carried_share`
    classes: dict[int, float]  # exemplar class index -> share of w, `class_shares`


@dataclass(frozen=True)
class PixelAttention:
    x: int
    y: int
    target_class: int  # c1's class index at the pixel
    scales: list[ScaleAttention]


def explain_pixel(
    records: list[AttentionRecord], target: TargetInput, exemplar: ExemplarInput, *, y: int, x: int
) -> PixelAttention:
    """Every scale's `ScaleAttention` of output pixel (y, x), finest first."""
    size = target.labels.shape
    scales = []
    for scale, record in enumerate(records):
        weights = pixel_attention(record, y, x, size)
        scales.append(
            ScaleAttention(
                scale=scale,
                weights=weights,
                overlay=heat_overlay(exemplar.image, weights),
                carried=carried_share(record, y, x, size),
                classes=class_shares(weights, exemplar.labels),
            )
        )
    return PixelAttention(x=x, y=y, target_class=int(target.labels[y, x]), scales=scales)
