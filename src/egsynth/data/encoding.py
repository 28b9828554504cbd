"""Label maps and images as the models see them: the one place label values become class indices and
images become tensors, and back (docs/design.md, "Conventions").

Files hold stuffthingmaps values (COCO-stuff id - 1, 255 unlabeled); the models use contiguous class
indices 0..NUM_CLASSES-1 (`cocostuff.label_value_to_index`), one-hot over the classes. A pixel of no
class has the one sentinel `UNLABELED_INDEX`: unlabeled pixels, and pixels whose value is no
COCO-stuff class (an id COCO-stuff never uses). Whether such values are an error is the reader's
decision: `unknown_label_values` lists them. One-hot maps give a sentinel pixel an all-zero vector.

Images are uint8 RGB [H, W, 3] in files and arrays, float [3, H, W] in [-1, 1] inside the models.
"""

from __future__ import annotations

import numpy as np
import torch
from einops import rearrange
from torch import Tensor

from egsynth.data import cocostuff

UNLABELED_INDEX = cocostuff.UNLABELED
"""The class index of a pixel of no class: one-hot gives it an all-zero vector, cross-entropy and the
confusion matrices ignore it. It equals the unlabeled label value (255), which no class index reaches."""


def _value_to_index() -> np.ndarray:
    table = np.full(256, UNLABELED_INDEX, dtype=np.uint8)
    for value, index in cocostuff.label_value_to_index().items():
        table[value] = index
    return table


def _index_to_value() -> np.ndarray:
    value_of = {index: value for value, index in cocostuff.label_value_to_index().items()}
    return np.array([value_of[index] for index in range(cocostuff.NUM_CLASSES)], dtype=np.uint8)


VALUE_TO_INDEX = _value_to_index()
"""[256] uint8 lookup: stuffthingmaps value -> class index, `UNLABELED_INDEX` for 255 and for values of no class."""

INDEX_TO_VALUE = _index_to_value()
"""[NUM_CLASSES] uint8 lookup: class index -> stuffthingmaps value (the inverse)."""

_KNOWN_VALUE = np.zeros(256, dtype=bool)  # a class's value, or unlabeled
_KNOWN_VALUE[INDEX_TO_VALUE] = True
_KNOWN_VALUE[cocostuff.UNLABELED] = True

# ----------------------------------------------------------------------------------------------
# label values <-> class indices


def unknown_label_values(values: np.ndarray) -> list[int]:
    """The distinct values of a uint8 stuffthingmaps array that are no COCO-stuff class nor 255, ascending."""
    return np.unique(values[~_KNOWN_VALUE[values]]).tolist()


def label_indices(values: np.ndarray) -> np.ndarray:
    """stuffthingmaps values -> uint8 class indices of the same shape, `UNLABELED_INDEX` where unlabeled or
    of no class (check `unknown_label_values` first where that is an error)."""
    return VALUE_TO_INDEX[values]


def label_values(indices: np.ndarray) -> np.ndarray:
    """Class indices -> uint8 stuffthingmaps values of the same shape, 255 wherever the index is no class."""
    values = np.full(indices.shape, cocostuff.UNLABELED, dtype=np.uint8)
    labeled = indices < cocostuff.NUM_CLASSES
    values[labeled] = INDEX_TO_VALUE[indices[labeled]]
    return values


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
