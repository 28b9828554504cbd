"""The embedded default dataset: procedural scenes written in COCO-stuff's own file layout.

Each scene is `render(layout, style, texture_seed)` (see `procedural`), so a later stage can draw
"layout A in the style of scene B" exactly. The writer produces what COCO-stuff ships (docs/design.md,
"The embedded default dataset"): JPEG images, single-channel stuffthingmaps PNGs (id - 1, 255
unlabeled), stuff JSON (stuff categories 92-182 and 183 "other" over thing pixels) and instances
JSON (things 1-90), both with RLE segmentations encoded by pycocotools, plus a sidecar table
`procedural.parquet` with each image's seeds and style vector.
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from pycocotools import mask as mask_utils
from tqdm import tqdm

from egsynth.config import ScenesConfig
from egsynth.data import cocostuff, procedural
from egsynth.data.cocostuff import CocoStuffLayout

log = logging.getLogger(__name__)

SIDECAR_NAME = "procedural.parquet"


@dataclass(frozen=True)
class ScenePlan:
    """Everything that determines one scene of the embedded dataset."""

    image_id: int
    split: str  # train2017 | val2017
    kind: str  # procedural.SCENE_KINDS
    layout_seed: int
    style_seed: int
    texture_seed: int

    @property
    def file_name(self) -> str:
        return f"{self.image_id:012d}.jpg"


def plan_scenes(config: ScenesConfig) -> list[ScenePlan]:
    """Seeds and kinds of every scene; a pure function of `config` (same seed, same dataset)."""
    total = config.num_train + config.num_val
    rng = np.random.default_rng(config.seed)
    num_indoor = round(total * config.indoor_fraction)
    num_object = round(total * config.object_fraction)
    kinds = np.array(
        ["indoor"] * num_indoor + ["object"] * num_object + ["outdoor"] * (total - num_indoor - num_object)
    )
    kinds = kinds[rng.permutation(total)]
    seeds = rng.integers(0, 2**31 - 1, size=(total, 3))
    return [
        ScenePlan(
            image_id=index + 1,
            split="train2017" if index < config.num_train else "val2017",
            kind=str(kinds[index]),
            layout_seed=int(seeds[index, 0]),
            style_seed=int(seeds[index, 1]),
            texture_seed=int(seeds[index, 2]),
        )
        for index in range(total)
    ]


def _encode(mask: np.ndarray) -> tuple[dict, int, list[float]]:
    """pycocotools RLE of a boolean mask, JSON-ready, with its area and [x, y, w, h] box."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    area = int(mask_utils.area(rle))
    bbox = [float(v) for v in mask_utils.toBbox(rle)]
    rle["counts"] = rle["counts"].decode("ascii")
    return rle, area, bbox


def _annotation(image_id: int, category_id: int, mask: np.ndarray) -> dict:
    rle, area, bbox = _encode(mask)
    return {
        "image_id": image_id,
        "category_id": category_id,
        "segmentation": rle,
        "area": area,
        "bbox": bbox,
        "iscrowd": 0,
    }


def annotate(image_id: int, label_map: procedural.LabelMap) -> tuple[list[dict], list[dict]]:
    """COCO-stuff annotations of one label map: (stuff annotations, thing instance annotations).

    Stuff: one annotation per stuff class present, plus category 183 "other" covering all thing
    pixels, as COCO-stuff's stuff JSON does. Things: one annotation per instance.
    """
    labels = label_map.labels
    stuff = []
    for value in np.unique(labels):
        category_id = int(value) + 1
        if value != cocostuff.UNLABELED and not cocostuff.category(category_id).isthing:
            stuff.append(_annotation(image_id, category_id, labels == value))
    if label_map.things:
        thing_pixels = np.logical_or.reduce([thing.mask for thing in label_map.things])
        stuff.append(_annotation(image_id, cocostuff.OTHER_STUFF_ID, thing_pixels))
    things = [_annotation(image_id, thing.category_id, thing.mask) for thing in label_map.things]
    return stuff, things


def _render_and_write(
    plan: ScenePlan, root: Path, height: int, width: int, jpeg_quality: int
) -> tuple[list[dict], list[dict], list[float]]:
    """Render one scene, write its JPEG and label PNG, return its annotations and style vector."""
    layout_tree = CocoStuffLayout(root)
    layout = procedural.sample_layout(plan.layout_seed, plan.kind)
    style = procedural.sample_style(plan.style_seed)
    label_map = procedural.rasterize(layout, height, width)
    image = procedural.render(layout, style, plan.texture_seed, height, width)
    Image.fromarray(image).save(layout_tree.image_dir(plan.split) / plan.file_name, quality=jpeg_quality)
    Image.fromarray(label_map.labels).save(layout_tree.label_path(plan.split, plan.file_name))
    stuff, things = annotate(plan.image_id, label_map)
    return stuff, things, style.vector.tolist()


def _render_chunk(
    plans: list[ScenePlan], root: Path, height: int, width: int, jpeg_quality: int
) -> list[tuple[list[dict], list[dict], list[float]]]:
    return [_render_and_write(plan, root, height, width, jpeg_quality) for plan in plans]


def _coco_json(
    images: list[dict], annotations: list[dict], categories: list[cocostuff.Category], description: str
) -> dict:
    return {
        "info": {"description": description, "version": "1.0", "year": 2017},
        "licenses": [],
        "images": images,
        "annotations": [dict(annotation, id=index + 1) for index, annotation in enumerate(annotations)],
        "categories": [{"id": c.id, "name": c.name, "supercategory": c.supercategory} for c in categories],
    }


def write_annotations(
    tree: CocoStuffLayout, split: str, images: list[dict], stuff: list[dict], things: list[dict], description: str
) -> None:
    """Write a split's stuff and instances JSON; `images` are COCO image records (id, file_name, height, width)."""
    tree.stuff_json(split).parent.mkdir(parents=True, exist_ok=True)
    stuff_json = _coco_json(images, stuff, [*cocostuff.STUFF, cocostuff.OTHER_STUFF], description)
    tree.stuff_json(split).write_text(json.dumps(stuff_json))
    tree.instances_json(split).write_text(json.dumps(_coco_json(images, things, list(cocostuff.THINGS), description)))


def write_embedded_dataset(config: ScenesConfig, root: Path, *, chunk_size: int = 64) -> pd.DataFrame:
    """Render every planned scene into the COCO-stuff tree at `root`; return the sidecar table.

    Rendering fans out over `config.workers` processes in chunks; the JSON files and the sidecar
    are assembled in this process, in image-id order, so the output does not depend on scheduling.
    """
    plans = plan_scenes(config)
    tree = CocoStuffLayout(root)
    for split in cocostuff.SPLITS:
        tree.image_dir(split).mkdir(parents=True, exist_ok=True)
        tree.label_dir(split).mkdir(parents=True, exist_ok=True)

    chunks = [plans[start : start + chunk_size] for start in range(0, len(plans), chunk_size)]
    render_chunk = partial(
        _render_chunk, root=root, height=config.height, width=config.width, jpeg_quality=config.jpeg_quality
    )
    results: list[tuple[list[dict], list[dict], list[float]]] = []
    with tqdm(total=len(plans), desc="scenes", unit="scene") as progress, ExitStack() as stack:
        mapper = map if config.workers == 1 else stack.enter_context(ProcessPoolExecutor(config.workers)).map
        for rendered in mapper(render_chunk, chunks):
            results.extend(rendered)
            progress.update(len(rendered))

    description = f"egsynth embedded procedural scenes, seed {config.seed}"
    for split in cocostuff.SPLITS:
        in_split = [(plan, result) for plan, result in zip(plans, results, strict=True) if plan.split == split]
        images = [
            {"id": p.image_id, "file_name": p.file_name, "height": config.height, "width": config.width}
            for p, _ in in_split
        ]
        stuff = [annotation for _, (stuff_annotations, _, _) in in_split for annotation in stuff_annotations]
        things = [annotation for _, (_, thing_annotations, _) in in_split for annotation in thing_annotations]
        write_annotations(tree, split, images, stuff, things, description)

    sidecar = pd.DataFrame(
        {
            "image_id": [p.image_id for p in plans],
            "split": [p.split for p in plans],
            "file_name": [p.file_name for p in plans],
            "kind": [p.kind for p in plans],
            "layout_seed": [p.layout_seed for p in plans],
            "style_seed": [p.style_seed for p in plans],
            "texture_seed": [p.texture_seed for p in plans],
            "style": [style for _, _, style in results],
        }
    )
    sidecar.attrs["style_fields"] = list(procedural.STYLE_FIELDS)
    sidecar.to_parquet(root / SIDECAR_NAME, index=False)
    log.info("wrote %d scenes to %s", len(plans), root)
    return sidecar
