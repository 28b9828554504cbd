"""Keep outdoor scenes: the paper "remove[s] indoor images and images of random objects" (Sec. 4).

Per image, the area fractions of stuff, things, indoor stuff and unlabeled pixels come from the
COCO-stuff stuff annotations through pycocotools (the same code reads real COCO-stuff and the
embedded dataset); thresholds in params decide. Every label map is validated as it is read.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from tqdm import tqdm

from egsynth.config import FilterConfig
from egsynth.data import cocostuff
from egsynth.data.cocostuff import CocoStuffLayout
from egsynth.data.source import DatasetError

SPLIT_OF_SET = {"train2017": "train", "val2017": "test"}
"""COCO-stuff's train set trains; its val set is the paper's test set."""

REMOVAL_REASONS = ("invalid", "indoor", "object", "unlabeled")


class LabelMapError(DatasetError):
    """A label map (or its image) that breaks COCO-stuff's format; the message names the file."""


@dataclass(frozen=True)
class AreaFractions:
    stuff: float
    thing: float
    indoor: float
    unlabeled: float


def area_fractions(stuff_annotations: list[dict], coco: COCO, height: int, width: int) -> AreaFractions:
    """Fractions of the image covered by stuff, things (COCO-stuff's "other"), indoor stuff, nothing."""
    pixels = float(height * width)
    stuff = thing = indoor = 0.0
    for annotation in stuff_annotations:
        area = float(mask_utils.area(coco.annToRLE(annotation)))
        if annotation["category_id"] == cocostuff.OTHER_STUFF_ID:
            thing += area
            continue
        stuff += area
        if cocostuff.category(annotation["category_id"]).supercategory in cocostuff.INDOOR_STUFF_SUPERCATEGORIES:
            indoor += area
    stuff, thing, indoor = stuff / pixels, thing / pixels, indoor / pixels
    return AreaFractions(stuff=stuff, thing=thing, indoor=indoor, unlabeled=max(0.0, 1.0 - stuff - thing))


def removal_reason(fractions: AreaFractions, config: FilterConfig) -> str | None:
    """Why an image is not an outdoor scene (`indoor`, `object`, `unlabeled`), or None to keep it."""
    if fractions.indoor > config.max_indoor_fraction:
        return "indoor"
    if fractions.thing > config.max_thing_fraction or fractions.stuff < config.min_stuff_fraction:
        return "object"
    if fractions.unlabeled > config.max_unlabeled_fraction:
        return "unlabeled"
    return None


def validate_label_map(label_path: Path, image_path: Path, height: int, width: int) -> None:
    """Raise LabelMapError unless the PNG is a single-channel COCO-stuff label map of its image's size."""
    if not image_path.is_file():
        raise LabelMapError(f"{image_path}: image listed in the annotations is missing")
    if not label_path.is_file():
        raise LabelMapError(f"{label_path}: label map of {image_path.name} is missing")
    with Image.open(image_path) as image:
        image_size = image.size
    try:
        with Image.open(label_path) as label_image:
            mode, size = label_image.mode, label_image.size
            labels = np.asarray(label_image)
    except OSError as error:
        raise LabelMapError(f"{label_path}: not a readable PNG ({error})") from None
    if mode not in ("L", "P"):
        raise LabelMapError(
            f"{label_path}: label map has mode {mode} ({len(mode)} channels); expected a single-channel PNG"
        )
    if size != image_size or size != (width, height):
        raise LabelMapError(
            f"{label_path}: label map is {size[0]}x{size[1]} but its image {image_path.name} is "
            f"{image_size[0]}x{image_size[1]} (annotations say {width}x{height})"
        )
    values = np.unique(labels)
    invalid = [int(v) for v in values if not cocostuff.is_valid_label_value(int(v))]
    if invalid:
        raise LabelMapError(f"{label_path}: label values {invalid} outside 0-181 and 255 (unlabeled)")


def filter_scenes(tree: CocoStuffLayout, config: FilterConfig) -> tuple[pd.DataFrame, dict]:
    """Validate and classify every image of both splits; return (kept scenes table, report).

    The table has one row per kept image: ids, split (`train` / `test`), image and label paths,
    size and the area fractions. The report counts kept images and removals per reason.
    """
    rows: list[dict] = []
    removed = dict.fromkeys(REMOVAL_REASONS, 0)
    total = 0
    for coco_split, split in SPLIT_OF_SET.items():
        coco = COCO(str(tree.stuff_json(coco_split)))
        for image_id in tqdm(sorted(coco.getImgIds()), desc=f"filter {coco_split}", unit="image"):
            total += 1
            info = coco.loadImgs(image_id)[0]
            image_path = tree.image_dir(coco_split) / info["file_name"]
            label_path = tree.label_path(coco_split, info["file_name"])
            annotations = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
            try:
                if not annotations:
                    raise LabelMapError(f"{image_path}: image has no annotations in {tree.stuff_json(coco_split)}")
                validate_label_map(label_path, image_path, info["height"], info["width"])
            except LabelMapError:
                if config.on_invalid == "error":
                    raise
                removed["invalid"] += 1
                continue
            fractions = area_fractions(annotations, coco, info["height"], info["width"])
            reason = removal_reason(fractions, config)
            if reason is not None:
                removed[reason] += 1
                continue
            rows.append(
                {
                    "image_id": image_id,
                    "split": split,
                    "file_name": info["file_name"],
                    "image_path": str(image_path),
                    "label_path": str(label_path),
                    "height": info["height"],
                    "width": info["width"],
                    **{f"{name}_fraction": value for name, value in asdict(fractions).items()},
                }
            )
    scenes = pd.DataFrame(rows)
    report = {
        "images": total,
        "kept": len(scenes),
        "kept_train": int((scenes["split"] == "train").sum()) if rows else 0,
        "kept_test": int((scenes["split"] == "test").sum()) if rows else 0,
        "removed": removed,
    }
    return scenes, report
