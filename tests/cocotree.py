"""Build small COCO-stuff trees from hand-made label maps, for filter and reader tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from egsynth.data import cocostuff, procedural
from egsynth.data.cocostuff import CocoStuffLayout
from egsynth.data.embedded import annotate, write_annotations


def label_value(name: str) -> int:
    return cocostuff.category(name).label_value


def stripes(*bands: tuple[str | None, float], size: int = 32) -> np.ndarray:
    """A label map of horizontal bands, top to bottom, each (class name or None, height share)."""
    labels = np.full((size, size), cocostuff.UNLABELED, dtype=np.uint8)
    edges = np.round(np.cumsum([0.0, *(share for _, share in bands)]) * size).astype(int)
    for (name, _), top, bottom in zip(bands, edges[:-1], edges[1:], strict=True):
        if name is not None:
            labels[top:bottom] = label_value(name)
    return labels


def with_thing(labels: np.ndarray, name: str, box: tuple[int, int, int, int]) -> procedural.LabelMap:
    """Paint a thing instance into `box` (y0, x0, y1, x1) and return the label map with its instance."""
    labels = labels.copy()
    mask = np.zeros(labels.shape, dtype=bool)
    y0, x0, y1, x1 = box
    mask[y0:y1, x0:x1] = True
    labels[mask] = label_value(name)
    return procedural.LabelMap(
        labels=labels, things=(procedural.Thing(category_id=cocostuff.category_id(name), mask=mask),)
    )


def write_tree(root: Path, scenes: dict[str, tuple[str, procedural.LabelMap]]) -> CocoStuffLayout:
    """Write `{file stem: (split, label map)}` as a COCO-stuff tree with gray images; splits may be empty."""
    tree = CocoStuffLayout(root)
    records: dict[str, tuple[list, list, list]] = {split: ([], [], []) for split in cocostuff.SPLITS}
    for image_id, (stem, (split, label_map)) in enumerate(sorted(scenes.items()), start=1):
        height, width = label_map.labels.shape
        tree.image_dir(split).mkdir(parents=True, exist_ok=True)
        tree.label_dir(split).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((height, width, 3), 128, np.uint8)).save(tree.image_dir(split) / f"{stem}.jpg")
        Image.fromarray(label_map.labels).save(tree.label_dir(split) / f"{stem}.png")
        images, stuff, things = records[split]
        images.append({"id": image_id, "file_name": f"{stem}.jpg", "height": height, "width": width})
        stuff_annotations, thing_annotations = annotate(image_id, label_map)
        stuff.extend(stuff_annotations)
        things.extend(thing_annotations)
    for split, (images, stuff, things) in records.items():
        tree.image_dir(split).mkdir(parents=True, exist_ok=True)
        tree.label_dir(split).mkdir(parents=True, exist_ok=True)
        write_annotations(tree, split, images, stuff, things, "hand-made test tree")
    return tree
