"""Torch datasets of the self-supervised scheme: they apply manifest rows (`egsynth.data.patches`).

A row names a scene, a target box and an exemplar box in the global frame (the scene resized to
`image_size` square), and a flip flag for each; `PairDataset` crops, resizes enlarged crops to
`patch_size` (bilinear for images, nearest for labels) and flips, in that order. There is no
randomness here: item i is the same tensors every time, and training is a function of the manifest.

Tensors follow docs/design.md, "Conventions": images [3, P, P] in [-1, 1]; label maps one-hot float
[C, P, P] over the C = `cocostuff.NUM_CLASSES` contiguous classes, an unlabeled pixel all zeros
(`egsynth.data.encoding`).
The target's labels c_p are the ground truth; the exemplar's c~_q are the parsed maps of the `parse`
stage (the paper's DeepLab output; `parsed=None` is the oracle: ground truth on both sides).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import Dataset

from egsynth.data.encoding import one_hot, to_image_tensor
from egsynth.data.labels import read_label_indices
from egsynth.data.patches import COLUMNS
from egsynth.data.source import DatasetError

# ----------------------------------------------------------------------------------------------
# helpers


def read_image(path: Path | str, size: int) -> np.ndarray:
    """An RGB image resized to `size` x `size` (antialiased bilinear): uint8 [size, size, 3]."""
    with Image.open(path) as image:
        image = image.convert("RGB")
        if image.size != (size, size):
            image = image.resize((size, size), Image.Resampling.BILINEAR)  # Pillow filters when shrinking
        return np.array(image)


def crop(array: np.ndarray, y: int, x: int, size: int, *, out_size: int, flip: bool, labels: bool) -> np.ndarray:
    """The `size` box at (y, x), resized to `out_size` (nearest for labels, bilinear for images), then
    flipped horizontally if asked."""
    if not (0 <= y and 0 <= x and y + size <= array.shape[0] and x + size <= array.shape[1]):
        raise ValueError(f"box (y={y}, x={x}, size={size}) leaves the {array.shape[0]}x{array.shape[1]} image")
    patch = array[y : y + size, x : x + size]
    if size != out_size:
        resample = Image.Resampling.NEAREST if labels else Image.Resampling.BILINEAR
        patch = np.array(Image.fromarray(np.ascontiguousarray(patch)).resize((out_size, out_size), resample))
    return patch[:, ::-1] if flip else patch


# ----------------------------------------------------------------------------------------------
# scenes


@dataclass(frozen=True)
class Scene:
    """One scene at the global size."""

    image: np.ndarray  # uint8 [S, S, 3]
    labels: np.ndarray  # uint8 [S, S] class indices of the ground truth c
    parsed: np.ndarray  # uint8 [S, S] class indices of the parsed map c~ (the ground truth for the oracle)


class SceneLoader:
    """Reads scenes at the global size `image_size`, keeping the `cache_size` most recent in memory.

    Each scene costs about S * S * 5 bytes (S = image_size): 80 KiB at 128, 1.25 MiB at 512. Under a
    DataLoader with workers every worker has its own cache (keep `persistent_workers=True`).
    """

    def __init__(
        self,
        scenes: pd.DataFrame,  # the filter stage's table: image_id, image_path, label_path
        parsed: pd.DataFrame | None,  # the parse stage's index: image_id, parsed_path; None: ground truth (oracle)
        *,
        image_size: int,  # global size S
        cache_size: int = 0,  # scenes kept in memory (least recently used dropped); 0: none
    ):
        missing = {"image_id", "image_path", "label_path"} - set(scenes.columns)
        if missing:
            raise DatasetError(f"the scenes table lacks columns {sorted(missing)}")
        self.image_size = image_size
        self.cache_size = cache_size
        self._paths = {
            int(i): (image, label)
            for i, image, label in zip(scenes["image_id"], scenes["image_path"], scenes["label_path"], strict=True)
        }
        self._parsed = None
        if parsed is not None:
            if not {"image_id", "parsed_path"} <= set(parsed.columns):
                raise DatasetError("the parsed index lacks columns image_id and parsed_path")
            self._parsed = {int(i): path for i, path in zip(parsed["image_id"], parsed["parsed_path"], strict=True)}
        self._cache: OrderedDict[int, Scene] = OrderedDict()

    def check(self, image_ids: np.ndarray) -> None:
        """Fail early, naming them, if some image ids have no scene (or no parsed map)."""
        for name, known in (("scenes table", self._paths), ("parsed index", self._parsed)):
            if known is None:
                continue
            absent = sorted({int(i) for i in image_ids} - known.keys())
            if absent:
                raise DatasetError(f"image ids {absent[:10]}{' ...' if len(absent) > 10 else ''} not in the {name}")

    def __call__(self, image_id: int) -> Scene:
        if image_id in self._cache:
            self._cache.move_to_end(image_id)
            return self._cache[image_id]
        image_path, label_path = self._paths[image_id]
        labels = read_label_indices(label_path, self.image_size)
        parsed = labels if self._parsed is None else read_label_indices(self._parsed[image_id], self.image_size)
        scene = Scene(image=read_image(image_path, self.image_size), labels=labels, parsed=parsed)
        if self.cache_size > 0:
            self._cache[image_id] = scene
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return scene


# ----------------------------------------------------------------------------------------------
# datasets


class PairDataset(Dataset):
    """Target and exemplar of each manifest row (Eq. 9: x_p, c_p, x_q, c~_q; Eq. 10: x, c, x, c~).

    An item is a dict: "target" [3, P, P] and "exemplar" [3, P, P] in [-1, 1], "target_labels" (ground
    truth) and "exemplar_labels" (parsed) one-hot [C, P, P], "image_id" int. P is `patch_size` for
    cross rows (enlarged crops are resized to it) and `image_size` for global rows, so give global
    and cross rows to separate datasets (a batch has one size).

    One-hot maps are large (C = 171 floats a pixel: 11 MiB per map at 128, 179 MiB at 512), and
    collating them costs more than reading the scenes; with `one_hot_labels=False` the labels come as
    uint8 class indices [P, P] (`UNLABELED_INDEX` where unlabeled) and `one_hot(batch.to(device))`
    gives the same tensors on the training device.
    """

    def __init__(
        self,
        rows: pd.DataFrame,  # manifest rows (egsynth.data.patches.COLUMNS)
        scenes: pd.DataFrame,  # the filter stage's table
        parsed: pd.DataFrame | None,  # the parse stage's index; None: ground truth for the exemplar (oracle)
        *,
        image_size: int,  # global size the boxes refer to (manifest.image_size)
        patch_size: int,  # output size of cross rows (manifest.patch_size)
        cache_size: int = 0,  # scenes kept in memory, see SceneLoader
        one_hot_labels: bool = True,  # False: labels as uint8 [P, P] class indices, for `one_hot` on the device
    ):
        missing = set(COLUMNS) - set(rows.columns)
        if missing:
            raise DatasetError(f"manifest rows lack columns {sorted(missing)}")
        self.image_size = image_size
        self.patch_size = patch_size
        self.one_hot_labels = one_hot_labels
        self.loader = SceneLoader(scenes, parsed, image_size=image_size, cache_size=cache_size)
        self._image_ids = rows["image_id"].to_numpy(dtype=np.int64)
        self.loader.check(self._image_ids)
        self._global = (rows["task"] == "global").to_numpy()
        self._target = rows[["target_y", "target_x", "target_size"]].to_numpy(dtype=np.int64)  # [N, 3]
        self._exemplar = rows[["exemplar_y", "exemplar_x", "exemplar_size"]].to_numpy(dtype=np.int64)  # [N, 3]
        self._flips = rows[["flip_target", "flip_exemplar"]].to_numpy(dtype=bool)  # [N, 2]

    def __len__(self) -> int:
        return len(self._image_ids)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        image_id = int(self._image_ids[index])
        scene = self.loader(image_id)
        out_size = self.image_size if self._global[index] else self.patch_size
        item: dict[str, torch.Tensor | int] = {}
        for side, box, flip, labels in (
            ("target", self._target[index], self._flips[index, 0], scene.labels),
            ("exemplar", self._exemplar[index], self._flips[index, 1], scene.parsed),
        ):
            y, x, size = (int(v) for v in box)
            options = {"out_size": out_size, "flip": bool(flip)}
            image = crop(scene.image, y, x, size, labels=False, **options)  # [P, P, 3]
            indices = crop(labels, y, x, size, labels=True, **options)  # [P, P]
            item[side] = to_image_tensor(image)  # [3, P, P]
            indices = torch.from_numpy(indices.copy())  # [P, P], never a view of a cached scene
            item[f"{side}_labels"] = one_hot(indices) if self.one_hot_labels else indices  # [C, P, P] or [P, P]
        item["image_id"] = image_id
        return item
