import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from egsynth.config import FilterConfig, ManifestConfig, PretrainConfig, ScenesConfig, TrainConfig
from egsynth.data import cocostuff
from egsynth.data.cocostuff import CocoStuffLayout
from egsynth.data.datasets import PairDataset
from egsynth.data.embedded import write_embedded_dataset
from egsynth.data.encoding import one_hot
from egsynth.data.filtering import filter_scenes
from egsynth.data.labels import read_label_indices
from egsynth.data.patches import COLUMNS, build_manifests
from egsynth.data.source import DatasetError

SIZE, PATCH, ENLARGED = 32, 16, 24
SEA = cocostuff.category("sea").label_value
INDEX = cocostuff.label_value_to_index()
VALUES = np.array(sorted(INDEX))


def row(image_id: int, target=(0, 0, PATCH), exemplar=(SIZE - PATCH, 0, PATCH), *, flips=(False, False), task="cross"):
    return {
        "image_id": image_id,
        "epoch": 0,
        "phase": 1,
        "task": task,
        **dict(zip(("target_y", "target_x", "target_size"), target, strict=True)),
        **dict(zip(("exemplar_y", "exemplar_x", "exemplar_size"), exemplar, strict=True)),
        "flip_target": flips[0],
        "flip_exemplar": flips[1],
    }


def rows(*entries: dict) -> pd.DataFrame:
    return pd.DataFrame(list(entries)).astype(COLUMNS)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """Two scenes at the global size (random pixels, random labels with unlabeled pixels), one at
    another size; and a parsed map of each that differs from the ground truth (all sea)."""
    root = tmp_path_factory.mktemp("scenes")
    rng = np.random.default_rng(0)
    records, parsed = [], []
    for image_id, (height, width) in enumerate([(SIZE, SIZE), (SIZE, SIZE), (48, 40)], start=1):
        image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        labels = rng.choice(VALUES, (height, width)).astype(np.uint8)
        labels[rng.random((height, width)) < 0.2] = cocostuff.UNLABELED
        Image.fromarray(image).save(root / f"{image_id}.png")
        Image.fromarray(labels).save(root / f"{image_id}_labels.png")
        Image.fromarray(np.full((height, width), SEA, np.uint8)).save(root / f"{image_id}_parsed.png")
        records.append(
            {
                "image_id": image_id,
                "split": "train",
                "image_path": str(root / f"{image_id}.png"),
                "label_path": str(root / f"{image_id}_labels.png"),
            }
        )
        parsed.append({"image_id": image_id, "split": "train", "parsed_path": str(root / f"{image_id}_parsed.png")})
    return pd.DataFrame(records), pd.DataFrame(parsed)


def raw(scenes: pd.DataFrame, image_id: int) -> tuple[np.ndarray, np.ndarray]:
    record = scenes.set_index("image_id").loc[image_id]
    return np.asarray(Image.open(record["image_path"])), np.asarray(Image.open(record["label_path"]))


def as_image(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float() / 127.5 - 1


def test_an_item_is_the_box_of_the_scene_with_one_hot_ground_truth_labels(tree):
    scenes, _ = tree
    item = PairDataset(rows(row(1, target=(3, 5, PATCH))), scenes, None, image_size=SIZE, patch_size=PATCH)[0]
    image, labels = raw(scenes, 1)
    torch.testing.assert_close(item["target"], as_image(image[3:19, 5:21]))
    assert item["target"].min() >= -1 and item["target"].max() <= 1
    target_labels = item["target_labels"]
    assert target_labels.shape == (cocostuff.NUM_CLASSES, PATCH, PATCH) and target_labels.dtype == torch.float32
    box = labels[3:19, 5:21]
    labeled = box != cocostuff.UNLABELED
    assert (target_labels.sum(0).numpy() == labeled).all(), "one class on labeled pixels, none on unlabeled"
    expected = np.vectorize(lambda v: INDEX.get(int(v), -1))(box)
    assert (target_labels.argmax(0).numpy()[labeled] == expected[labeled]).all()
    assert item["image_id"] == 1


def test_exemplar_labels_come_from_the_parsed_map_and_the_oracle_uses_ground_truth(tree):
    scenes, parsed = tree
    manifest = rows(row(2))
    item = PairDataset(manifest, scenes, parsed, image_size=SIZE, patch_size=PATCH)[0]
    sea = INDEX[SEA]
    assert (item["exemplar_labels"][sea] == 1).all() and item["exemplar_labels"].sum() == PATCH * PATCH
    oracle = PairDataset(manifest, scenes, None, image_size=SIZE, patch_size=PATCH)[0]
    _, labels = raw(scenes, 2)
    assert (oracle["exemplar_labels"].sum(0).numpy() == (labels[16:, :16] != cocostuff.UNLABELED)).all()
    torch.testing.assert_close(item["target_labels"], oracle["target_labels"], msg="targets keep ground truth")
    torch.testing.assert_close(item["exemplar"], oracle["exemplar"])


def test_a_flipped_crop_is_the_unflipped_crop_mirrored(tree):
    scenes, _ = tree
    boxes = {"target": (4, 2, ENLARGED), "exemplar": (8, 8, ENLARGED)}
    manifest = rows(*(row(3, *boxes.values(), flips=flips) for flips in [(False, False), (True, False), (False, True)]))
    dataset = PairDataset(manifest, scenes, None, image_size=SIZE, patch_size=PATCH)
    plain, target_flipped, exemplar_flipped = dataset[0], dataset[1], dataset[2]
    for key in ("target", "target_labels"):
        torch.testing.assert_close(target_flipped[key], plain[key].flip(-1))
        torch.testing.assert_close(exemplar_flipped[key], plain[key])
    for key in ("exemplar", "exemplar_labels"):
        torch.testing.assert_close(exemplar_flipped[key], plain[key].flip(-1))
        torch.testing.assert_close(target_flipped[key], plain[key])
    for key in ("target", "target_labels", "exemplar", "exemplar_labels"):
        assert not torch.equal(plain[key].flip(-1), plain[key]), "the crops are not symmetric"


def test_enlarged_crops_are_resized_to_the_patch_size_and_global_rows_keep_the_image_size(tree):
    scenes, parsed = tree
    manifest = rows(row(1, (4, 2, ENLARGED), (8, 8, ENLARGED)), row(1, (0, 0, SIZE), (0, 0, SIZE), task="global"))
    dataset = PairDataset(manifest, scenes, parsed, image_size=SIZE, patch_size=PATCH)
    enlarged, whole = dataset[0], dataset[1]
    for key in ("target", "exemplar"):
        assert enlarged[key].shape == (3, PATCH, PATCH) and whole[key].shape == (3, SIZE, SIZE)
        assert enlarged[f"{key}_labels"].shape == (cocostuff.NUM_CLASSES, PATCH, PATCH)
    image, _ = raw(scenes, 1)
    expected = np.asarray(Image.fromarray(image[4:28, 2:26]).resize((PATCH, PATCH), Image.Resampling.BILINEAR))
    torch.testing.assert_close(enlarged["target"], as_image(expected))
    torch.testing.assert_close(whole["target"], as_image(image))
    torch.testing.assert_close(whole["exemplar"], whole["target"])
    assert (whole["exemplar_labels"][INDEX[SEA]] == 1).all(), "global rows still take the parsed map as c~"


def test_scenes_of_another_size_are_resized_to_the_global_size(tree):
    scenes, parsed = tree
    manifest = rows(row(3, (0, 0, SIZE), (0, 0, SIZE), task="global"))
    item = PairDataset(manifest, scenes, parsed, image_size=SIZE, patch_size=PATCH)[0]
    assert item["target"].shape == (3, SIZE, SIZE) and item["target"].abs().max() <= 1
    labels = read_label_indices(scenes["label_path"][2], SIZE)
    assert labels.shape == (SIZE, SIZE)
    assert (item["target_labels"].sum(0).numpy() == (labels != 255)).all()


def test_items_are_the_same_every_time_with_or_without_cache(tree):
    scenes, parsed = tree
    manifest = rows(row(1), row(2, flips=(True, True)), row(1, (4, 2, ENLARGED), (8, 8, ENLARGED)))
    cached = PairDataset(manifest, scenes, parsed, image_size=SIZE, patch_size=PATCH, cache_size=1)
    plain = PairDataset(manifest, scenes, parsed, image_size=SIZE, patch_size=PATCH)
    for index in [0, 1, 2, 0, 2, 1]:
        a, b = cached[index], plain[index]
        for key in ("target", "target_labels", "exemplar", "exemplar_labels"):
            assert torch.equal(a[key], b[key])


def test_a_missing_parsed_map_or_a_bad_label_value_is_named(tree, tmp_path):
    scenes, parsed = tree
    with pytest.raises(DatasetError, match=r"image ids \[3\] not in the parsed index"):
        PairDataset(rows(row(3)), scenes, parsed[parsed["image_id"] != 3], image_size=SIZE, patch_size=PATCH)
    bad = tmp_path / "bad.png"
    Image.fromarray(np.full((SIZE, SIZE), 190, np.uint8)).save(bad)
    broken = scenes.assign(label_path=str(bad))
    with pytest.raises(DatasetError, match=rf"{bad}: label values \[190\]"):
        PairDataset(rows(row(1)), broken, None, image_size=SIZE, patch_size=PATCH)[0]


def test_an_epoch_of_an_embedded_tree_goes_through_a_dataloader(tmp_path):
    write_embedded_dataset(ScenesConfig(num_train=6, num_val=2, height=48, width=48, workers=1), tmp_path)
    scenes, _ = filter_scenes(CocoStuffLayout(tmp_path), FilterConfig())
    manifest = ManifestConfig(image_size=SIZE, patch_size=PATCH, enlarged_patch_size=ENLARGED)
    tables = build_manifests(scenes, manifest, TrainConfig(phase1_epochs=1, phase2_epochs=1), PretrainConfig())
    for name, size in (("patches", PATCH), ("enlarged", PATCH), ("global", SIZE)):
        dataset = PairDataset(tables[name], scenes, None, image_size=SIZE, patch_size=PATCH)
        batches = list(torch.utils.data.DataLoader(dataset, batch_size=4))
        assert sum(len(batch["image_id"]) for batch in batches) == len(tables[name])
        assert batches[0]["target"].shape == (4, 3, size, size)
        assert batches[0]["exemplar_labels"].shape == (4, cocostuff.NUM_CLASSES, size, size)
        assert set(torch.cat([batch["image_id"] for batch in batches]).tolist()) <= set(scenes["image_id"])


def test_index_labels_encoded_on_the_device_equal_the_one_hot_items(tree):
    scenes, parsed = tree
    manifest = rows(row(1, flips=(True, False)), row(2, (4, 2, ENLARGED), (8, 8, ENLARGED)))
    encoded = PairDataset(manifest, scenes, parsed, image_size=SIZE, patch_size=PATCH)
    indices = PairDataset(manifest, scenes, parsed, image_size=SIZE, patch_size=PATCH, one_hot_labels=False)
    for index in range(len(manifest)):
        for key in ("target_labels", "exemplar_labels"):
            assert indices[index][key].dtype == torch.uint8
            assert torch.equal(one_hot(indices[index][key]), encoded[index][key])
