"""Exemplar images and their label maps as tensors for the label parser.

Images are resized to a square `image_size` with antialiased bilinear interpolation and scaled to
[-1, 1] (docs/design.md, "Conventions": images live in [-1, 1] inside models; the parser is trained from
scratch, so ImageNet statistics would buy nothing). Label maps are resized with nearest neighbour and
mapped from stuffthingmaps values (COCO-stuff id - 1) to the contiguous class indices 0..170 by
`egsynth.data.labels`; unlabeled pixels (255) and values of ids COCO-stuff never uses become its
`UNLABELED_INDEX`, which cross-entropy and the metrics ignore.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset

from egsynth.data.encoding import to_image_tensor
from egsynth.data.labels import label_indices
from egsynth.data.source import DatasetError

# ----------------------------------------------------------------------------
# files


def read_image(path: Path | str) -> np.ndarray:
    """An image file as [H, W, 3] uint8 RGB (grayscale COCO images are converted)."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except FileNotFoundError:
        raise DatasetError(f"{path}: exemplar image is missing") from None
    except OSError as error:
        raise DatasetError(f"{path}: not a readable image ({error})") from None


def read_label_map(path: Path | str) -> np.ndarray:
    """A stuffthingmaps PNG as [H, W] uint8 (values id - 1, 255 unlabeled)."""
    try:
        with Image.open(path) as image:
            labels = np.asarray(image)
    except FileNotFoundError:
        raise DatasetError(f"{path}: label map is missing") from None
    except OSError as error:
        raise DatasetError(f"{path}: not a readable PNG ({error})") from None
    if labels.ndim != 2 or labels.dtype != np.uint8:
        raise DatasetError(f"{path}: label map must be a single-channel 8-bit PNG, got shape {labels.shape}")
    return labels


def write_label_map(path: Path, labels: np.ndarray) -> None:
    """Write [H, W] uint8 stuffthingmaps values as a single-channel PNG."""
    assert labels.ndim == 2 and labels.dtype == np.uint8, (labels.shape, labels.dtype)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(labels).save(path)  # 2-D uint8: mode L


# ----------------------------------------------------------------------------
# tensors


def image_tensor(image: np.ndarray, image_size: int) -> torch.Tensor:
    """[H, W, 3] uint8 -> [3, S, S] float in [-1, 1], resized with antialiased bilinear interpolation."""
    x = to_image_tensor(image)[None]  # [1, 3, H, W]
    x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False)
    return x[0]  # [3, S, S]


def target_tensor(labels: np.ndarray, image_size: int) -> torch.Tensor:
    """[H, W] stuffthingmaps values -> [S, S] int64 contiguous indices (UNLABELED_INDEX where unlabeled)."""
    index = torch.from_numpy(label_indices(labels))[None, None]  # [1, 1, H, W] uint8
    index = F.interpolate(index, size=(image_size, image_size), mode="nearest-exact")
    return index[0, 0].long()  # [S, S]


class SceneDataset(Dataset):
    """Rows of a scenes table (`image_path`, `label_path`) as (image [3, S, S] in [-1, 1], target [S, S])."""

    def __init__(self, scenes: pd.DataFrame, *, image_size: int):
        self.image_paths = list(scenes["image_path"])
        self.label_paths = list(scenes["label_path"])
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.image_paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, labels = read_image(self.image_paths[i]), read_label_map(self.label_paths[i])
        if image.shape[:2] != labels.shape:
            raise DatasetError(
                f"{self.label_paths[i]}: label map is {labels.shape[1]}x{labels.shape[0]} but its image is "
                f"{image.shape[1]}x{image.shape[0]}"
            )
        return image_tensor(image, self.image_size), target_tensor(labels, self.image_size)
