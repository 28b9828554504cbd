"""Label maps as files and numpy arrays, without torch: the one place label values become class indices
and back (docs/design.md, "Conventions"); `egsynth.data.encoding` makes tensors of them.

Files hold stuffthingmaps values (COCO-stuff id - 1, 255 unlabeled); the models use contiguous class
indices 0..NUM_CLASSES-1 (`cocostuff.label_value_to_index`). A pixel of no class has the one sentinel
`UNLABELED_INDEX`: unlabeled pixels, and pixels whose value is no COCO-stuff class (an id COCO-stuff never
uses). Whether such values are an error is the reader's decision: `unknown_label_values` lists them;
`read_label_indices`, the reader of label PNGs, refuses them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from egsynth.data import cocostuff
from egsynth.data.source import DatasetError

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
# label files


def read_label_indices(path: Path | str, size: int) -> np.ndarray:
    """A stuffthingmaps-encoded PNG (value = id - 1, 255 unlabeled) resized to `size` x `size`
    (nearest), as contiguous class indices: uint8 [size, size], `UNLABELED_INDEX` where unlabeled."""
    with Image.open(path) as labels:
        if labels.mode not in ("L", "P"):
            raise DatasetError(f"{path}: a label map must be a single-channel 8-bit PNG, got mode {labels.mode}")
        if labels.size != (size, size):
            labels = labels.resize((size, size), Image.Resampling.NEAREST)
        values = np.asarray(labels)
    unknown = unknown_label_values(values)
    if unknown:
        raise DatasetError(f"{path}: label values {unknown} are no COCO-stuff class nor 255 (unlabeled)")
    return label_indices(values)
