import io
import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from pycocotools.coco import COCO

from egsynth.config import ScenesConfig
from egsynth.data import cocostuff, procedural
from egsynth.data.cocostuff import CocoStuffLayout
from egsynth.data.embedded import SIDECAR_NAME, plan_scenes, write_embedded_dataset

CONFIG = ScenesConfig(
    seed=3, num_train=14, num_val=6, height=48, width=64, indoor_fraction=0.2, object_fraction=0.2, workers=1
)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("scenes")
    write_embedded_dataset(CONFIG, root, chunk_size=4)
    return CocoStuffLayout(root)


def tree_bytes(root):
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def test_same_seed_gives_byte_identical_scenes_whatever_the_number_of_workers(dataset, tmp_path):
    write_embedded_dataset(CONFIG.model_copy(update={"workers": 2}), tmp_path, chunk_size=3)
    assert tree_bytes(tmp_path) == tree_bytes(dataset.root)


def test_another_seed_gives_other_scenes(dataset, tmp_path):
    write_embedded_dataset(CONFIG.model_copy(update={"seed": 4, "num_train": 2, "num_val": 1}), tmp_path)
    first = "images/train2017/000000000001.jpg"
    assert tree_bytes(tmp_path)[first] != tree_bytes(dataset.root)[first]


def test_files_are_laid_out_as_cocostuff_ships_them(dataset):
    assert dataset.missing() == []
    for split, count in (("train2017", CONFIG.num_train), ("val2017", CONFIG.num_val)):
        images = sorted(dataset.image_dir(split).glob("*.jpg"))
        labels = sorted(dataset.label_dir(split).glob("*.png"))
        assert len(images) == len(labels) == count
        assert [p.stem for p in images] == [p.stem for p in labels]
        assert all(len(p.stem) == 12 and p.stem.isdigit() for p in images)
        with Image.open(labels[0]) as label:
            assert label.mode == "L" and label.size == (CONFIG.width, CONFIG.height)


def test_render_of_the_sidecar_seeds_and_style_reproduces_every_scene_exactly(dataset):
    sidecar = pd.read_parquet(dataset.root / SIDECAR_NAME)
    assert len(sidecar) == CONFIG.num_train + CONFIG.num_val
    for row in sidecar.itertuples():
        layout = procedural.sample_layout(row.layout_seed, row.kind)
        style = procedural.Style(vector=np.asarray(row.style, dtype=np.float32))
        labels = np.asarray(Image.open(dataset.label_path(row.split, row.file_name)))
        assert np.array_equal(procedural.rasterize(layout, CONFIG.height, CONFIG.width).labels, labels)
        encoded = io.BytesIO()
        Image.fromarray(procedural.render(layout, style, row.texture_seed, CONFIG.height, CONFIG.width)).save(
            encoded, format="JPEG", quality=CONFIG.jpeg_quality
        )
        assert encoded.getvalue() == (dataset.image_dir(row.split) / row.file_name).read_bytes()


def test_ann_to_mask_of_every_annotation_equals_its_class_pixels_in_the_label_png(dataset):
    thing_values = [c.label_value for c in cocostuff.THINGS]
    for split in cocostuff.SPLITS:
        stuff, instances = COCO(str(dataset.stuff_json(split))), COCO(str(dataset.instances_json(split)))
        for image_id in stuff.getImgIds():
            file_name = stuff.loadImgs(image_id)[0]["file_name"]
            labels = np.asarray(Image.open(dataset.label_path(split, file_name)))
            for annotation in stuff.loadAnns(stuff.getAnnIds(imgIds=image_id)):
                mask = stuff.annToMask(annotation).astype(bool)
                if annotation["category_id"] == cocostuff.OTHER_STUFF_ID:
                    assert np.array_equal(mask, np.isin(labels, thing_values))
                else:
                    assert np.array_equal(mask, labels == annotation["category_id"] - 1)
            union_per_class: dict[int, np.ndarray] = {}
            for annotation in instances.loadAnns(instances.getAnnIds(imgIds=image_id)):
                mask = instances.annToMask(annotation).astype(bool)
                previous = union_per_class.get(annotation["category_id"], np.zeros_like(mask))
                assert not (previous & mask).any()
                union_per_class[annotation["category_id"]] = previous | mask
            for category_id, union in union_per_class.items():
                assert np.array_equal(union, labels == category_id - 1)
            present_things = {int(v) + 1 for v in np.unique(labels) if int(v) in thing_values}
            assert present_things == set(union_per_class)


def test_json_categories_are_cocostuffs(dataset):
    stuff = json.loads(dataset.stuff_json("train2017").read_text())["categories"]
    things = json.loads(dataset.instances_json("train2017").read_text())["categories"]
    assert [(c["id"], c["name"]) for c in stuff] == [(c.id, c.name) for c in cocostuff.STUFF] + [(183, "other")]
    assert [(c["id"], c["name"], c["supercategory"]) for c in things] == [
        (c.id, c.name, c.supercategory) for c in cocostuff.THINGS
    ]


def test_plan_draws_the_configured_share_of_each_kind():
    config = ScenesConfig(num_train=80, num_val=20, indoor_fraction=0.15, object_fraction=0.05)
    kinds = [plan.kind for plan in plan_scenes(config)]
    assert (kinds.count("indoor"), kinds.count("object"), kinds.count("outdoor")) == (15, 5, 80)
    assert plan_scenes(config) == plan_scenes(config)
