"""Label maps and images as the models see them: class indices become one-hot tensors and images become
tensors, and back (docs/design.md, "Conventions").

Label values become class indices in `egsynth.data.labels`, without torch; here the class indices of a map
become one-hot over the classes, and the one sentinel for no class (`labels.UNLABELED_INDEX`) an all-zero
vector.

Images are uint8 RGB [H, W, 3] in files and arrays, float [3, H, W] in [-1, 1] inside the models.
"""

from __future__ import annotations

import numpy as np
import torch
from einops import rearrange
from torch import Tensor

from egsynth.data import cocostuff
from egsynth.data.labels import UNLABELED_INDEX

# ----------------------------------------------------------------------------------------------
# class indices <-> one-hot tensors


def one_hot(indices: Tensor, num_classes: int = cocostuff.NUM_CLASSES) -> Tensor:
    """Class indices [..., H, W] (`UNLABELED_INDEX` or any index >= num_classes: no class) -> float
    one-hot [..., C, H, W] with an all-zero vector on unlabeled pixels. Works batched and on any device."""
    indices = indices.long().unsqueeze(-3)  # [..., 1, H, W]
    labeled = (indices < num_classes).float()  # [..., 1, H, W]
    shape = (*indices.shape[:-3], num_classes, *indices.shape[-2:])
    # one write per pixel: 1 at its class, or 0 (a no-op) at the last class where unlabeled
    return torch.zeros(shape, device=indices.device).scatter_(-3, indices.clamp(max=num_classes - 1), labeled)


def to_label_indices(c: Tensor) -> np.ndarray:
    """One-hot labels [C, H, W] -> uint8 class indices [H, W], `UNLABELED_INDEX` on all-zero pixels."""
    c = c.detach().cpu()
    indices = c.argmax(dim=0).to(torch.uint8)  # [H, W]
    indices[c.sum(dim=0) == 0] = UNLABELED_INDEX
    return indices.numpy()


# ----------------------------------------------------------------------------------------------
# images <-> tensors


def to_image_tensor(image: np.ndarray) -> Tensor:
    """uint8 [H, W, 3] (any strides, read-only too) -> float [3, H, W] in [-1, 1]."""
    pixels = torch.from_numpy(np.require(image, requirements=("C", "W")))  # [H, W, 3]
    return rearrange(pixels, "h w c -> c h w").float() / 127.5 - 1.0


def to_image(x: Tensor) -> np.ndarray:
    """A model image [3, H, W] in [-1, 1] -> uint8 RGB [H, W, 3]."""
    x = ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return rearrange(x, "c h w -> h w c").numpy()  # [H, W, 3]
