"""Color correction of the retrieving task's ground truth toward the retrieved exemplar (Sec. 4).

The retrieved exemplar is another photo, so its colors differ from the ground truth's; the paper
"appl[ies] color correction [47] on GT to eliminate color discrepancy" (Fig. 4, blue box), [47]
being WCT2's photorealistic style transfer. The default here needs no weights: Reinhard et al.
(2001)'s statistics transfer, each channel's mean and standard deviation matched to the
reference's, done in CIELAB rather than their lαβ space.
"""

from __future__ import annotations

import kornia
import numpy as np
import torch
from einops import rearrange, reduce
from torch import Tensor

_MIN_STD = 1e-6  # a channel flatter than this keeps its spread (it is only shifted)


def _to_lab(image: np.ndarray) -> Tensor:
    """uint8 [H, W, 3] RGB -> float Lab [3, H, W] (L in [0, 100], a and b about [-128, 127])."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"images are uint8 [H, W, 3], got {image.dtype} {image.shape}")
    rgb = rearrange(torch.from_numpy(np.ascontiguousarray(image)), "h w c -> c h w").float() / 255  # [3, H, W]
    return kornia.color.rgb_to_lab(rgb)  # [3, H, W]


def _moments(lab: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel mean and (population) standard deviation of a Lab image [3, H, W]: [3, 1, 1] each."""
    mean = reduce(lab, "c h w -> c 1 1", "mean")  # [3, 1, 1]
    std = reduce((lab - mean) ** 2, "c h w -> c 1 1", "mean").sqrt()  # [3, 1, 1]
    return mean, std


@torch.inference_mode()
def color_transfer(image: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """`image` (uint8 [H, W, 3]) with each Lab channel's mean and std moved to `reference`'s (any
    size): uint8 [H, W, 3], clipped to the sRGB gamut."""
    lab, reference_lab = _to_lab(image), _to_lab(reference)
    mean, std = _moments(lab)
    reference_mean, reference_std = _moments(reference_lab)
    scale = torch.where(std > _MIN_STD, reference_std / std.clamp_min(_MIN_STD), 1.0)  # [3, 1, 1]
    rgb = kornia.color.lab_to_rgb((lab - mean) * scale + reference_mean, clip=True)  # [3, H, W] in [0, 1]
    return (rearrange(rgb, "c h w -> h w c") * 255).round().to(torch.uint8).numpy()
