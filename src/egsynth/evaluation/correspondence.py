"""Dense SIFT correspondence energy, in the spirit of SIFT Flow (Liu et al. 2011), to pick an exemplar.

Sec. 4 ("retrieving task") selects "the best-matched image ... out of candidates using SIFT Flow
[30]". A candidate matches well when a smooth, small flow w carries the target's dense SIFT image s1
onto the candidate's s2, i.e. when the minimum of

    E(w) = sum_p min(|s1(p) - s2(p + w(p))|_1, t)          data, truncated L1
         + sum_p eta |w(p)|_1                               small displacement
         + sum_(p,q) alpha min(|w(p) - w(q)|_1, d)          smoothness, over 4-neighbours

is low. `correspondence` returns that minimum per pixel, so images of any size compare, and the flow.

How it differs from SIFT Flow:

- SIFT Flow minimizes with loopy belief propagation on a dual-layer graph that decouples the
  horizontal and vertical flow (a truncated L1 smoothness on each component); we run checkerboard
  (red-black) ICM on the full 2-D displacement, vectorized in torch. Each half-sweep updates one
  colour exactly given the other, so the energy never increases, but ICM stops in a local minimum
  where belief propagation usually goes lower.
- Search windows are small: (2r+1)^2 integer displacements around the x2-upsampled coarser flow at
  every level (r = 3: up to 21 px over 3 levels), where SIFT Flow searches a wide window at its top.
- Descriptors come from kornia's `DenseSIFTDescriptor`: 3 x 3 cells of 3 px, 4 orientations, RootSIFT,
  so 36-D and unit L2, where SIFT Flow uses 4 x 4 cells and 8 orientations (128-D). Coarser levels
  average 2 x 2 descriptors and renormalize, as SIFT Flow's SIFT pyramid smooths and subsamples.
- A displacement that leaves the candidate pays the data truncation t (nothing there can match),
  where SIFT Flow clamps to the border.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import kornia
import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

# ---------------------------------------------------------------------------------------------
# defaults
#
# Scale: between these unit 36-D descriptors the L1 distance has a median of ~1.1 from a pixel to
# its neighbour and ~4 between unrelated pixels (procedural scenes, 64 px).

LEVELS = 3  # pyramid levels, halving each time: a 64 px image is searched from 16 px up
RADIUS = 3  # (2r+1)^2 = 49 displacements per level, reaching r (2^levels - 1) = 21 px over 3 levels
ALPHA = 0.5  # a 1-px flow step costs about half the descriptor change of a 1-px shift
ETA = 0.01  # small-displacement prior: breaks ties in flat regions toward w = 0, and little else
DATA_TRUNCATION = 4.0  # about the distance of unrelated pixels: occluded pixels cost the same anywhere
SMOOTH_TRUNCATION = 4.0  # px of flow difference; flow may jump between objects for alpha * 4
ITERATIONS = 8  # ICM sweeps per level, at most; it stops early once no pixel moves
CHUNK = 8  # candidates per batch: bounds memory (49 unary costs a pixel: 51 MiB a candidate at 512 px)

# 3 x 3 cells of 3 px padded by (3 - 1) * 3 / 2: one descriptor per pixel, centred on it.
_SIFT = kornia.feature.DenseSIFTDescriptor(num_ang_bins=4, num_spatial_bins=3, spatial_bin_size=3, padding=3)
_OUTSIDE = 10**4  # flow of the missing neighbours beyond the border: costs every label the truncation


@dataclass(frozen=True, eq=False)
class Correspondence:
    """How well a candidate matches the target, and the flow that matches it."""

    energy: float  # final-level E(w) / (H * W), lower is a better match
    flow: np.ndarray  # int64 [2, H, W], (dy, dx): target pixel p matches candidate pixel p + w(p)


# ---------------------------------------------------------------------------------------------
# helpers


def _check_images(target: np.ndarray, candidates: list[np.ndarray]) -> None:
    if target.ndim != 3 or target.shape[2] != 3 or target.dtype != np.uint8:
        raise ValueError(f"images are uint8 [H, W, 3], got {target.dtype} {target.shape}")
    for candidate in candidates:
        if candidate.shape != target.shape or candidate.dtype != np.uint8:
            raise ValueError(
                f"a candidate must be uint8 {target.shape} like the target, got {candidate.dtype} {candidate.shape}"
            )


def _offsets(radius: int) -> Tensor:
    """The (2r+1)^2 integer displacements of a window, dy-major: long [K, 2]."""
    steps = torch.arange(-radius, radius + 1)  # [2r+1]
    return rearrange(torch.stack(torch.meshgrid(steps, steps, indexing="ij")), "two a b -> (a b) two")  # [K, 2]


def dense_sift(images: np.ndarray) -> Tensor:
    """Dense RootSIFT of uint8 RGB images [B, H, W, 3] on their grayscale: float [B, D, H, W], unit L2
    per pixel (RootSIFT is, except where the image is flat and the descriptor is zero).

    One image at a time: torch's batched convolution rounds differently with the batch size (~1e-7),
    and an image's descriptors, so a candidate's energy, must not depend on the images beside it."""
    x = rearrange(torch.from_numpy(np.ascontiguousarray(images)), "b h w c -> b c h w").float() / 255  # [B, 3, H, W]
    gray = kornia.color.rgb_to_grayscale(x)  # [B, 1, H, W]
    return torch.cat([_SIFT(image[None]) for image in gray])  # [B, D, H, W]


def _pyramid(descriptors: Tensor, levels: int) -> list[Tensor]:
    """The SIFT pyramid, finest first: each level the 2 x 2 average of the finer one, renormalized."""
    pyramid = [descriptors]
    for _ in range(levels - 1):
        pooled = F.avg_pool2d(pyramid[-1], kernel_size=2, ceil_mode=True)  # [B, D, ceil(H/2), ceil(W/2)]
        pyramid.append(F.normalize(pooled, dim=1))
    return pyramid


def _pixels_last(descriptors: Tensor) -> Tensor:
    """[B, D, H, W] -> [B*H*W, D], rows in (b, y, x) order, so one index_select warps the batch."""
    return rearrange(descriptors, "b d h w -> (b h w) d").contiguous()  # [B*H*W, D]


def _truncated_l1(s1: Tensor, s2: Tensor, rows: Tensor, inside: Tensor, data_truncation: float) -> Tensor:
    """min(|s1(p) - s2[rows_p]|_1, t) where `inside`, t elsewhere.

    s1 [H*W, D] or [B*H*W, D] and s2 [B*H*W, D] from `_pixels_last`; rows long, inside bool [B, H, W].
    """
    batch, height, width = rows.shape
    warped = s2.index_select(0, rows.flatten())  # [B*H*W, D]
    distance = rearrange(warped, "(b p) d -> b p d", b=batch).sub_(s1.view(-1, height * width, s1.shape[-1]))
    cost = rearrange(distance.abs_().sum(-1), "b (h w) -> b h w", h=height)  # [B, H, W]
    return torch.where(inside, cost.clamp_max_(data_truncation), data_truncation)


def _first_rows(batch: int, height: int, width: int) -> Tensor:
    """The row of pixel (b, 0, 0) in `_pixels_last` order: long [B, 1, 1]."""
    return rearrange(torch.arange(batch) * height * width, "b -> b 1 1")


def _energy(
    s1: Tensor, s2: Tensor, flow: Tensor, *, alpha: float, eta: float, data_truncation: float, smooth_truncation: float
) -> Tensor:
    """E(w) / (H W) of each flow long [B, 2, H, W] from s1 [1, D, H, W] to s2 [B, D, H, W]: float64 [B]."""
    batch, _, height, width = flow.shape
    ys = torch.arange(height)[:, None] + flow[:, 0]  # [B, H, W]
    xs = torch.arange(width)[None, :] + flow[:, 1]  # [B, H, W]
    inside = (ys >= 0) & (ys < height) & (xs >= 0) & (xs < width)  # [B, H, W]
    rows = _first_rows(batch, height, width) + ys.clamp(0, height - 1) * width + xs.clamp(0, width - 1)  # [B, H, W]
    data = _truncated_l1(_pixels_last(s1), _pixels_last(s2), rows, inside, data_truncation).double()  # [B, H, W]
    w = flow.double()
    vertical = (w[:, :, 1:] - w[:, :, :-1]).abs().sum(1).clamp_max(smooth_truncation)  # [B, H-1, W]
    horizontal = (w[..., 1:] - w[..., :-1]).abs().sum(1).clamp_max(smooth_truncation)  # [B, H, W-1]
    smooth = vertical.sum((1, 2)) + horizontal.sum((1, 2))  # [B]
    return (data.sum((1, 2)) + eta * w.abs().sum((1, 2, 3)) + alpha * smooth) / (height * width)


def _unary(s1: Tensor, s2: Tensor, base: Tensor, *, radius: int, eta: float, data_truncation: float) -> Tensor:
    """Data plus small-displacement cost of every label base + `_offsets(radius)[k]`: [B*H*W, K].

    The window is a product of 2r+1 row and 2r+1 column steps, so coordinates, bounds and the prior are
    prepared per axis and each of the K labels costs one gather and one L1 pass.
    """
    batch, _, height, width = base.shape
    steps = rearrange(torch.arange(-radius, radius + 1), "s -> s 1 1 1")  # [2r+1, 1, 1, 1]
    ys = torch.arange(height)[:, None] + base[:, 0] + steps  # [2r+1, B, H, W]
    xs = torch.arange(width)[None, :] + base[:, 1] + steps  # [2r+1, B, H, W]
    inside_y, inside_x = (ys >= 0) & (ys < height), (xs >= 0) & (xs < width)  # [2r+1, B, H, W] each
    rows_y = _first_rows(batch, height, width) + ys.clamp(0, height - 1) * width  # [2r+1, B, H, W]
    rows_x = xs.clamp(0, width - 1)  # [2r+1, B, H, W]
    prior_y, prior_x = eta * (base[:, 0] + steps).abs(), eta * (base[:, 1] + steps).abs()  # [2r+1, B, H, W] each
    unary = torch.empty((2 * radius + 1) ** 2, batch, height, width)  # [K, B, H, W], rows written whole
    for i in range(2 * radius + 1):
        for j in range(2 * radius + 1):
            data = _truncated_l1(s1, s2, rows_y[i] + rows_x[j], inside_y[i] & inside_x[j], data_truncation)
            torch.add(data, prior_y[i], out=unary[i * (2 * radius + 1) + j]).add_(prior_x[j])  # [B, H, W]
    return rearrange(unary, "k b h w -> (b h w) k").contiguous()  # [B*H*W, K]


def _smoothness_table(offsets: Tensor, *, alpha: float, smooth_truncation: float) -> tuple[Tensor, int]:
    """alpha min(|offsets[k] - e|_1, d) for every label k and neighbour offset e in [-R, R]^2, with
    R = r + ceil(d): float [(2R+1)^2, K], and R. Beyond R every label pays alpha d, as at R, so a
    clamped e reads the table exactly."""
    reach = int(offsets.max()) + math.ceil(smooth_truncation)
    gap = (_offsets(reach)[:, None, :] - offsets[None, :, :]).abs().sum(-1)  # [(2R+1)^2, K]
    return alpha * gap.clamp_max(smooth_truncation).float(), reach


def _icm(
    unary: Tensor, base: Tensor, *, radius: int, alpha: float, smooth_truncation: float, iterations: int
) -> Tensor:
    """Checkerboard ICM from the unary (data plus small-displacement) winner: the flow long [B, 2, H, W]
    among base + `_offsets(radius)`.

    Pixels of one colour have no 4-neighbour of that colour, so updating all of them at once given the
    other colour is exact coordinate descent: the energy never increases. A pixel is revisited only
    once a neighbour has moved (otherwise it would keep its label), so late sweeps are nearly free. A
    neighbour beyond the border has the flow `_OUTSIDE`, which costs every label the same.
    """
    batch, _, height, width = base.shape
    offsets = _offsets(radius)  # [K, 2]
    table, reach = _smoothness_table(offsets, alpha=alpha, smooth_truncation=smooth_truncation)  # [(2R+1)^2, K]
    initial = base + rearrange(offsets[unary.min(-1).indices], "(b h w) two -> b two h w", b=batch, h=height)
    flow = rearrange(F.pad(initial, (1, 1, 1, 1), value=_OUTSIDE), "b two h w -> (b h w) two")  # [B*(H+2)*(W+2), 2]
    base = rearrange(base, "b two h w -> (b h w) two")  # [B*H*W, 2]
    steps = torch.tensor([-(width + 2), width + 2, -1, 1])  # up, down, left, right in the padded grid
    b, y, x = (
        rearrange(i, "b h w -> (b h w)")
        for i in torch.meshgrid(torch.arange(batch), torch.arange(height), torch.arange(width), indexing="ij")
    )  # [B*H*W] each
    padded = (b * (height + 2) + y + 1) * (width + 2) + x + 1  # [B*H*W], each pixel's row in `flow`
    colours = [((y + x) % 2 == c).nonzero().squeeze(1) for c in (0, 1)]  # the pixels of each colour
    dirty = torch.ones(len(flow), dtype=torch.bool)  # [B*(H+2)*(W+2)]: a neighbour moved since the last visit
    for _ in range(iterations):
        moved_any = False
        for pixels in colours:
            pixels = pixels[dirty[padded[pixels]]]  # [S]
            rows = padded[pixels]  # [S]
            dirty[rows] = False
            e = (flow[rows[:, None] + steps] - base[pixels, None]).clamp(-reach, reach) + reach  # [S, 4, 2]
            entries = e[..., 0] * (2 * reach + 1) + e[..., 1]  # [S, 4], rows of `table`
            total = unary.index_select(0, pixels)  # [S, K]
            for neighbour in entries.T:
                total.add_(table.index_select(0, neighbour))  # [S, K]
            new = base[pixels] + offsets[total.min(-1).indices]  # [S, 2], the first of equal minima
            moved = (new != flow[rows]).any(-1)  # [S]
            flow[rows] = new
            dirty[(rows[moved, None] + steps).flatten()] = True
            moved_any = moved_any or bool(moved.any())
        if not moved_any:
            break
    return rearrange(flow, "(b h w) two -> b two h w", b=batch, h=height + 2)[..., 1:-1, 1:-1]  # [B, 2, H, W]


def _upsample(flow: Tensor, height: int, width: int) -> Tensor:
    """The coarser flow at the finer level: each vector doubled and copied to its 2 x 2 block."""
    finer = 2 * flow.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)  # [B, 2, 2h, 2w]
    return finer[..., :height, :width]  # [B, 2, H, W]


# ---------------------------------------------------------------------------------------------
# public


@torch.inference_mode()
def rank_candidates(
    target: np.ndarray,  # uint8 [H, W, 3]
    candidates: list[np.ndarray],  # uint8 [H, W, 3] each, the target's size
    *,
    levels: int = LEVELS,  # pyramid levels, each half the size of the finer one
    radius: int = RADIUS,  # search window of (2r+1)^2 displacements around the upsampled coarser flow
    alpha: float = ALPHA,  # weight of the truncated L1 smoothness
    eta: float = ETA,  # weight of the small-displacement term |w|_1
    data_truncation: float = DATA_TRUNCATION,  # t of the truncated L1 descriptor distance
    smooth_truncation: float = SMOOTH_TRUNCATION,  # d of the smoothness, in px of flow difference
    iterations: int = ITERATIONS,  # ICM sweeps per level, at most; 0: the unary winner at every level
    chunk: int = CHUNK,  # candidates solved as one batch
) -> list[Correspondence]:
    """The correspondence of every candidate, in input order. The target's descriptors are computed
    once and the candidates solved `chunk` at a time as one batch, which is what makes ranking a pool
    cheap; each candidate's flow and energy are the same in any chunk (ICM moves each image's pixels
    by its own neighbours only)."""
    _check_images(target, candidates)
    if levels < 1 or radius < 1 or iterations < 0 or chunk < 1:
        raise ValueError(
            f"expects levels >= 1, radius >= 1, iterations >= 0, chunk >= 1, got {levels}, {radius}, {iterations}, "
            f"{chunk}"
        )
    pyramid1 = _pyramid(dense_sift(target[None]), levels)  # [1, D, H, W] finest first
    costs = {"alpha": alpha, "eta": eta, "data_truncation": data_truncation, "smooth_truncation": smooth_truncation}
    matches = []
    for start in range(0, len(candidates), chunk):
        pyramid2 = _pyramid(dense_sift(np.stack(candidates[start : start + chunk])), levels)  # [B, D, H, W] ...
        matches += _solve(pyramid1, pyramid2, radius=radius, iterations=iterations, **costs)
    return matches


def _solve(
    pyramid1: list[Tensor],
    pyramid2: list[Tensor],
    *,
    radius: int,
    iterations: int,
    alpha: float,
    eta: float,
    data_truncation: float,
    smooth_truncation: float,
) -> list[Correspondence]:
    """Coarse to fine from the target's SIFT pyramid [1, D, ., .] to a batch of candidates' [B, D, ., .]."""
    flow = torch.zeros(len(pyramid2[0]), 2, *pyramid1[-1].shape[-2:], dtype=torch.long)  # [B, 2, h, w]
    for level, (s1, s2) in enumerate(zip(reversed(pyramid1), reversed(pyramid2), strict=True)):
        flow = _upsample(flow, *s1.shape[-2:]) if level else flow  # [B, 2, H, W]
        unary = _unary(
            _pixels_last(s1), _pixels_last(s2), flow, radius=radius, eta=eta, data_truncation=data_truncation
        )  # [B*H*W, K]
        flow = _icm(unary, flow, radius=radius, alpha=alpha, smooth_truncation=smooth_truncation, iterations=iterations)
    energies = _energy(
        pyramid1[0],
        pyramid2[0],
        flow,
        alpha=alpha,
        eta=eta,
        data_truncation=data_truncation,
        smooth_truncation=smooth_truncation,
    )  # [B]
    return [Correspondence(float(e), f.numpy().copy()) for e, f in zip(energies, flow, strict=True)]


def correspondence(target: np.ndarray, candidate: np.ndarray, **kwargs: float) -> Correspondence:
    """The coarse-to-fine flow from target to candidate (uint8 [H, W, 3] each, the same size) and its
    energy per pixel; keywords as in `rank_candidates`."""
    (match,) = rank_candidates(target, [candidate], **kwargs)
    return match


@torch.inference_mode()
def energy(
    target: np.ndarray,  # uint8 [H, W, 3]
    candidate: np.ndarray,  # uint8 [H, W, 3]
    flow: np.ndarray,  # integer [2, H, W], (dy, dx)
    *,
    alpha: float = ALPHA,
    eta: float = ETA,
    data_truncation: float = DATA_TRUNCATION,
    smooth_truncation: float = SMOOTH_TRUNCATION,
) -> float:
    """E(w) / (H W) of a given flow at full resolution: what `correspondence` minimizes and reports."""
    _check_images(target, [candidate])
    if flow.shape != (2, *target.shape[:2]):
        raise ValueError(f"flow must be [2, H, W] = {(2, *target.shape[:2])}, got {flow.shape}")
    descriptors = dense_sift(np.stack([target, candidate]))  # [2, D, H, W]
    w = torch.from_numpy(np.asarray(flow, dtype=np.int64))[None]  # [1, 2, H, W]
    (value,) = _energy(
        descriptors[:1],
        descriptors[1:],
        w,
        alpha=alpha,
        eta=eta,
        data_truncation=data_truncation,
        smooth_truncation=smooth_truncation,
    )
    return float(value)
