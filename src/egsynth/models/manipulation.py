"""Style manipulation with a trained generator and no further training (Sec. 4, Figs. 5, 7, 8).

- `interpolate`: between the styles of two exemplars by mixing their spatial attention (Sec. 4
  "Interpolation": logits offset by log t and log(1 - t), one softmax over both scenes side by
  side, gates interpolated); MSCA variants only.
- `interpolate_spatial`: per-location mixing through the channel attention, e.g. a left-to-right
  ramp (Fig. 7): the output location takes t(x) of exemplar 2's aligned features and 1 - t(x) of
  exemplar 3's, which is channel attention over the two scenes' masked features side by side.
- `extrapolate`: a large label map from a small exemplar patch (Fig. 8): overlapping patches at the
  four corners and random positions, blended with weights that fall off toward patch borders.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from egsynth.models.generator import Generator


def interpolate(
    generator: Generator, c1: Tensor, first: tuple[Tensor, Tensor], second: tuple[Tensor, Tensor], t: float
) -> Tensor:
    """The target c1 in a style t of the way from `first` (t = 0) to `second` (t = 1); exemplars are (x, c̃).

    `second` is MSCA's exemplar 2, whose attention share is t (Sec. 4, "Interpolation"), `first` its exemplar 3.
    """
    if not generator.spec.msca:
        raise ValueError(f"style interpolation needs MSCA attention; variant {generator.variant!r} has none")
    if not 0.0 <= t <= 1.0:
        raise ValueError(f"interpolation factor t must lie in [0, 1], got {t}")
    target = generator.encode_target(c1)
    exemplar_2, exemplar_3 = generator.encode_exemplar(*second), generator.encode_exemplar(*first)
    masking = generator.spec.feature_masking
    aligned = []
    for i, msca in enumerate(generator.aligners):
        labels = {"c2": exemplar_2.labels[i], "c3": exemplar_3.labels[i], "c1": target.labels[i]}
        f_2 = (exemplar_2.features[i], exemplar_2.label_features[i])
        f_3 = (exemplar_3.features[i], exemplar_3.label_features[i])
        aligned.append(msca.interpolate(*f_2, *f_3, target.label_features[i], t, masking=masking, **labels)[0])
    return generator.synthesize(aligned, target)


def horizontal_ramp(height: int, width: int) -> Tensor:
    """Weights [1, 1, H, W] going from 1 at the left edge to 0 at the right (Fig. 7)."""
    return torch.linspace(1.0, 0.0, width).expand(1, 1, height, width).clone()


def interpolate_spatial(
    generator: Generator, c1: Tensor, first: tuple[Tensor, Tensor], second: tuple[Tensor, Tensor], weights: Tensor
) -> Tensor:
    """Mix two exemplars' styles per location: `weights` [B or 1, 1, H1, W1] in [0, 1] is `first`'s share."""
    if not generator.spec.aligns:
        raise ValueError(f"spatial interpolation needs per-location aligned features; {generator.variant} has none")
    target = generator.encode_target(c1)
    aligned_first, _ = generator.align(generator.encode_exemplar(*first), target)
    aligned_second, _ = generator.align(generator.encode_exemplar(*second), target)
    mixed = []
    for f_first, f_second in zip(aligned_first, aligned_second, strict=True):
        share = F.interpolate(weights, size=f_first.shape[-2:], mode="bilinear", align_corners=False)  # [B, 1, h, w]
        mixed.append(share * f_first + (1 - share) * f_second)
    return generator.synthesize(mixed, target)


def _blend_window(size: int) -> Tensor:
    """Separable tent weights [size, size], highest at the centre, positive at the border."""
    ramp = torch.minimum(torch.arange(size) + 1.0, size - torch.arange(size, dtype=torch.float32))
    ramp = ramp / ramp.max()
    return ramp[:, None] * ramp[None, :]


def extrapolation_positions(
    height: int, width: int, patch: int, *, num_random: int, seed: int
) -> list[tuple[int, int]]:
    """Top-left corners: the four corners, `num_random` seeded random positions, and a grid wherever
    those leave a pixel uncovered (the paper: 4 corners + 10 random positions for 512 from 256)."""
    if patch > min(height, width):
        raise ValueError(f"patch {patch} is larger than the label map {height}x{width}")
    corners = [(0, 0), (0, width - patch), (height - patch, 0), (height - patch, width - patch)]
    generator = torch.Generator().manual_seed(seed)
    randoms = [
        (
            int(torch.randint(0, height - patch + 1, (1,), generator=generator)),
            int(torch.randint(0, width - patch + 1, (1,), generator=generator)),
        )
        for _ in range(num_random)
    ]
    positions = list(dict.fromkeys(corners + randoms))
    covered = torch.zeros(height, width, dtype=torch.bool)
    for top, left in positions:
        covered[top : top + patch, left : left + patch] = True
    rows = sorted({min(y, height - patch) for y in range(0, height, patch)})
    cols = sorted({min(x, width - patch) for x in range(0, width, patch)})
    for top in rows:
        for left in cols:
            if not covered[top : top + patch, left : left + patch].all():
                positions.append((top, left))
                covered[top : top + patch, left : left + patch] = True
    return positions


def extrapolate(
    generator: Generator,
    c1: Tensor,
    exemplar: tuple[Tensor, Tensor],
    *,
    patch: int,
    num_random: int = 10,
    seed: int = 0,
) -> Tensor:
    """Synthesize a label map c1 [B, C, H, W] larger than the exemplar patch, blending overlapping patches."""
    _, _, height, width = c1.shape
    window = _blend_window(patch).to(c1)
    total = torch.zeros(c1.shape[0], 3, height, width, dtype=c1.dtype, device=c1.device)
    weight = torch.zeros(1, 1, height, width, dtype=c1.dtype, device=c1.device)
    for top, left in extrapolation_positions(height, width, patch, num_random=num_random, seed=seed):
        image = generator(c1[:, :, top : top + patch, left : left + patch], *exemplar).image
        total[:, :, top : top + patch, left : left + patch] += image * window
        weight[:, :, top : top + patch, left : left + patch] += window
    return total / weight
