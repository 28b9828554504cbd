import numpy as np
import pandas as pd
import pytest

from egsynth.config import ManifestConfig, PretrainConfig, TrainConfig
from egsynth.data.patches import (
    COLUMNS,
    TABLES,
    build_manifests,
    patch_rows,
    phase_rows,
    read_manifests,
    sample_pairs,
    sample_random_crops,
    self_reconstruction_rows,
    write_manifests,
)
from egsynth.data.source import DatasetError

MANIFEST = ManifestConfig(seed=3, image_size=64, patch_size=24, enlarged_patch_size=40)
TRAIN = TrainConfig(phase1_epochs=2, phase2_epochs=3)
PRETRAIN = PretrainConfig(epochs=2)
# (image_size, crop_size): room to spare, exactly two (the paper's 256 in 512), odd sizes, one crop = image
SIZES = [(64, 24), (64, 32), (37, 11), (128, 64), (16, 16)]


def scenes_table(train: int = 9, test: int = 4) -> pd.DataFrame:
    ids = np.random.default_rng(0).permutation(np.arange(100, 100 + train + test))  # not in id order
    return pd.DataFrame({"image_id": ids, "split": ["train"] * train + ["test"] * test})


def boxes(rows: pd.DataFrame, side: str) -> np.ndarray:
    return rows[[f"{side}_y", f"{side}_x", f"{side}_size"]].to_numpy()  # [N, 3]


def overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Overlap (rows, cols) of square boxes (y, x, size), each [N, 3] -> [N, 2]."""
    low = np.maximum(a[:, :2], b[:, :2])
    high = np.minimum(a[:, :2] + a[:, 2:], b[:, :2] + b[:, 2:])
    return np.clip(high - low, 0, None)


def inside(box: np.ndarray, image_size: int) -> bool:
    return bool((box[:, :2] >= 0).all() and (box[:, :2] + box[:, 2:] <= image_size).all())


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return build_manifests(scenes_table(), MANIFEST, TRAIN, PRETRAIN)


def test_two_crops_that_fit_side_by_side_never_overlap_and_stay_inside():
    for seed in range(40):
        rng = np.random.default_rng(seed)
        for image_size, crop_size in SIZES[:-1]:
            target, exemplar = sample_pairs(rng, 50, image_size=image_size, crop_size=crop_size)
            size = np.full((50, 1), crop_size)
            target, exemplar = np.hstack([target, size]), np.hstack([exemplar, size])
            assert inside(target, image_size) and inside(exemplar, image_size)
            assert (overlap(target, exemplar).prod(axis=1) == 0).all(), (seed, image_size, crop_size)


def test_phase1_and_pretrain_rows_never_overlap_and_stay_inside():
    for seed in range(25):
        manifest = ManifestConfig(seed=seed, image_size=64, patch_size=24, enlarged_patch_size=40)
        tables = build_manifests(scenes_table(), manifest, TRAIN, PRETRAIN)
        for name in ("pretrain", "patches"):
            target, exemplar = boxes(tables[name], "target"), boxes(tables[name], "exemplar")
            assert (target[:, 2] == 24).all() and (exemplar[:, 2] == 24).all()
            assert inside(target, 64) and inside(exemplar, 64)
            assert (overlap(target, exemplar).prod(axis=1) == 0).all()


def test_collision_avoidance_separates_along_both_axes():
    target, exemplar = sample_pairs(np.random.default_rng(0), 400, image_size=64, crop_size=24)
    apart = np.abs(target - exemplar) >= 24  # [N, (y, x)]
    assert apart.any(axis=1).all()
    vertical, horizontal = apart[:, 0] & ~apart[:, 1], apart[:, 1] & ~apart[:, 0]
    assert vertical.sum() > 100 and horizontal.sum() > 100
    assert (target[:, 0] < exemplar[:, 0]).any() and (target[:, 0] > exemplar[:, 0]).any(), "either side first"
    assert len(np.unique(target, axis=0)) > 100, "positions vary"


def test_enlarged_crops_lie_at_random_positions_inside_the_image_that_vary_with_the_seed(tables):
    rows = tables["enlarged"]
    target, exemplar = boxes(rows, "target"), boxes(rows, "exemplar")
    assert (target[:, 2] == 40).all() and (exemplar[:, 2] == 40).all()
    assert inside(target, 64) and inside(exemplar, 64)
    corners = np.concatenate([target[:, :2], exemplar[:, :2]]).ravel()  # both sides, both axes
    assert len(np.unique(corners)) > 10 and ((corners > 0) & (corners < 64 - 40)).any(), "not only the two ends"
    other = build_manifests(scenes_table(), MANIFEST.model_copy(update={"seed": 4}), TRAIN, PRETRAIN)["enlarged"]
    assert not np.array_equal(boxes(other, "target"), target) and not np.array_equal(boxes(other, "exemplar"), exemplar)
    assert inside(boxes(other, "target"), 64) and inside(boxes(other, "exemplar"), 64)


@pytest.mark.parametrize(("image_size", "crop_size"), [*SIZES, (512, 384)])
def test_random_crops_stay_inside_and_reach_every_position(image_size, crop_size):
    target, exemplar = sample_random_crops(np.random.default_rng(0), 3000, image_size=image_size, crop_size=crop_size)
    size = np.full((3000, 1), crop_size)
    assert inside(np.hstack([target, size]), image_size) and inside(np.hstack([exemplar, size]), image_size)
    span = image_size - crop_size
    if span <= 30:  # every corner 0..span drawn, for each side and axis
        for corners in (target, exemplar):
            assert all(set(corners[:, axis]) == set(range(span + 1)) for axis in (0, 1))
    if span:
        assert (target != exemplar).any(axis=1).mean() > 0.9, "the target's and the exemplar's are drawn apart"


def test_collision_avoidance_refuses_crops_that_do_not_fit_twice():
    with pytest.raises(ValueError, match="do not fit side by side"):
        sample_pairs(np.random.default_rng(0), 4, image_size=64, crop_size=33)


def test_global_rows_cover_the_whole_image_with_target_equal_to_exemplar(tables):
    rows = tables["global"]
    assert (rows["task"] == "global").all() and (rows["phase"] == 2).all()
    assert (boxes(rows, "target") == [0, 0, 64]).all() and (boxes(rows, "exemplar") == [0, 0, 64]).all()
    assert (rows["flip_target"] == rows["flip_exemplar"]).all() and rows["flip_target"].nunique() == 2


def test_same_seed_gives_the_same_bytes_and_another_seed_other_rows(tmp_path, tables):
    write_manifests(tables, tmp_path / "a")
    write_manifests(build_manifests(scenes_table(), MANIFEST, TRAIN, PRETRAIN), tmp_path / "b")
    for name in TABLES:
        assert (tmp_path / "a" / f"{name}.parquet").read_bytes() == (tmp_path / "b" / f"{name}.parquet").read_bytes()
    read = read_manifests(tmp_path / "a")
    for name in TABLES:
        pd.testing.assert_frame_equal(read[name], tables[name])
    other = build_manifests(scenes_table(), MANIFEST.model_copy(update={"seed": 4}), TRAIN, PRETRAIN)
    for name in TABLES:
        assert not other[name].equals(tables[name]), name


def test_scene_order_of_the_input_does_not_matter(tables):
    shuffled = scenes_table().sample(frac=1, random_state=1)
    again = build_manifests(shuffled, MANIFEST, TRAIN, PRETRAIN)
    for name in TABLES:
        pd.testing.assert_frame_equal(again[name], tables[name])


def test_every_epoch_holds_each_train_scene_once_in_a_shuffled_order(tables):
    scenes = scenes_table()
    train_ids = sorted(scenes.loc[scenes["split"] == "train", "image_id"])
    expected_epochs = {"pretrain": [0, 1], "patches": [0, 1, 2, 3, 4], "enlarged": [2, 3, 4], "global": [2, 3, 4]}
    for name, rows in tables.items():
        assert list(rows.columns) == list(COLUMNS) and rows.dtypes.astype(str).to_dict() == COLUMNS
        assert sorted(rows["epoch"].unique()) == expected_epochs[name]
        orders = []
        for _, epoch in rows.groupby("epoch"):
            assert sorted(epoch["image_id"]) == train_ids
            orders.append(tuple(epoch["image_id"]))
        assert len(set(orders)) == len(orders), f"{name}: each epoch has its own order"
        assert all(order != tuple(train_ids) for order in orders)


def test_phases_and_what_each_training_phase_selects(tables):
    assert (tables["pretrain"]["phase"] == 0).all()
    patches = tables["patches"]
    assert ((patches["epoch"] < 2) == (patches["phase"] == 1)).all()
    one = phase_rows(tables, phase=1)
    assert list(one) == ["cross"] and (one["cross"]["phase"] == 1).all() and len(one["cross"]) == 2 * 9
    two = phase_rows(tables, phase=2)
    assert two["cross"] is tables["enlarged"] and two["global"] is tables["global"]
    no_global = phase_rows(tables, phase=2, use_global=False)
    assert list(no_global) == ["cross"] and (no_global["cross"]["target_size"] == 24).all()
    assert sorted(no_global["cross"]["epoch"].unique()) == [2, 3, 4]


def test_phase1_rows_do_not_depend_on_how_many_epochs_follow():
    short = patch_rows(scenes_table(), MANIFEST, phase1_epochs=2, phase2_epochs=0)
    long = patch_rows(scenes_table(), MANIFEST, phase1_epochs=2, phase2_epochs=5)
    pd.testing.assert_frame_equal(short, long[long["epoch"] < 2])


def test_flips_are_drawn_for_target_and_exemplar_independently_and_can_be_switched_off(tables):
    rows = tables["patches"]
    pairs = set(zip(rows["flip_target"], rows["flip_exemplar"], strict=True))
    assert pairs == {(False, False), (False, True), (True, False), (True, True)}
    unflipped = build_manifests(scenes_table(), MANIFEST.model_copy(update={"flip": False}), TRAIN, PRETRAIN)
    for name in TABLES:
        assert not unflipped[name][["flip_target", "flip_exemplar"]].any().any()
        geometry = [c for c in COLUMNS if not c.startswith("flip")]
        pd.testing.assert_frame_equal(unflipped[name][geometry], tables[name][geometry])


def test_zero_epochs_give_empty_tables_with_the_columns():
    tables = build_manifests(
        scenes_table(), MANIFEST, TrainConfig(phase1_epochs=1, phase2_epochs=0), PretrainConfig(epochs=0)
    )
    for name in ("pretrain", "enlarged", "global"):
        assert tables[name].empty and tables[name].dtypes.astype(str).to_dict() == COLUMNS


def test_no_train_scene_is_an_error():
    with pytest.raises(DatasetError, match="no train scenes"):
        build_manifests(scenes_table(train=0), MANIFEST, TRAIN, PRETRAIN)


def test_self_reconstruction_rows_make_each_target_crop_its_own_exemplar(tables):
    cross = phase_rows(tables, phase=1)["cross"]
    own = self_reconstruction_rows(cross)
    for field in ("y", "x", "size"):
        assert (own[f"exemplar_{field}"] == cross[f"target_{field}"]).all()
        assert (own[f"target_{field}"] == cross[f"target_{field}"]).all()
    assert (own["flip_exemplar"] == cross["flip_target"]).all()
    assert (cross["exemplar_x"] != cross["target_x"]).any(), "the input rows are left as they were"


@pytest.mark.parametrize("phase", [1, 2])
def test_self_reconstruction_phase_rows_keep_every_target_and_make_it_the_exemplar(tables, phase):
    crossing, own = phase_rows(tables, phase=phase), phase_rows(tables, phase=phase, self_reconstruction=True)
    assert list(own) == list(crossing)
    for task, rows in own.items():
        pd.testing.assert_frame_equal(
            rows[["image_id", "epoch", "task"]], crossing[task][["image_id", "epoch", "task"]]
        )
        np.testing.assert_array_equal(boxes(rows, "target"), boxes(crossing[task], "target"))
        np.testing.assert_array_equal(boxes(rows, "exemplar"), boxes(rows, "target"))
        assert (rows["flip_exemplar"] == rows["flip_target"]).all()
