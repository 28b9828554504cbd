import numpy as np
import pytest
from PIL import Image

from egsynth.config import FilterConfig
from egsynth.data import procedural
from egsynth.data.filtering import LabelMapError, filter_scenes
from tests.cocotree import stripes, with_thing, write_tree

CONFIG = FilterConfig()


def plain(labels: np.ndarray) -> procedural.LabelMap:
    return procedural.LabelMap(labels=labels, things=())


@pytest.fixture
def mixed_tree(tmp_path):
    outdoor = plain(stripes(("sky-other", 0.5), ("grass", 0.5)))
    outdoor_with_cow = with_thing(stripes(("sky-other", 0.4), ("sea", 0.2), ("sand", 0.4)), "cow", (20, 4, 28, 12))
    indoor = plain(stripes(("ceiling-other", 0.2), ("wall-brick", 0.5), ("floor-wood", 0.3)))
    indoor_window = plain(stripes(("sky-other", 0.8), ("wall-other", 0.2)))  # a view out of a window
    object_centric = with_thing(stripes(("grass", 1.0)), "teddy bear", (2, 2, 30, 30))
    mostly_unlabeled = plain(stripes(("sky-other", 0.6), (None, 0.4)))
    return write_tree(
        tmp_path,
        {
            "outdoor": ("train2017", outdoor),
            "outdoor_with_cow": ("val2017", outdoor_with_cow),
            "indoor": ("train2017", indoor),
            "indoor_window": ("train2017", indoor_window),
            "object": ("val2017", object_centric),
            "unlabeled": ("train2017", mostly_unlabeled),
        },
    )


def test_filter_keeps_outdoor_scenes_and_names_the_reason_for_the_rest(mixed_tree):
    kept, report = filter_scenes(mixed_tree, CONFIG)
    assert sorted(kept["file_name"]) == ["outdoor.jpg", "outdoor_with_cow.jpg"]
    assert report["removed"] == {"invalid": 0, "indoor": 2, "object": 1, "unlabeled": 1}
    assert report["images"] == 6 and report["kept"] == 2
    assert dict(zip(kept["file_name"], kept["split"], strict=True)) == {
        "outdoor.jpg": "train",
        "outdoor_with_cow.jpg": "test",
    }


def test_area_fractions_come_from_the_annotations(mixed_tree):
    kept, _ = filter_scenes(mixed_tree, CONFIG)
    row = kept.set_index("file_name").loc["outdoor_with_cow.jpg"]
    cow = 8 * 8 / 32**2
    assert row["thing_fraction"] == pytest.approx(cow)
    assert row["stuff_fraction"] == pytest.approx(1 - cow)
    assert row["indoor_fraction"] == 0
    assert row["unlabeled_fraction"] == pytest.approx(0)


def test_thresholds_come_from_params(mixed_tree):
    lenient = FilterConfig(
        max_indoor_fraction=1.0, max_thing_fraction=1.0, min_stuff_fraction=0.0, max_unlabeled_fraction=1.0
    )
    kept, report = filter_scenes(mixed_tree, lenient)
    assert report["kept"] == 6 and len(kept) == 6


def corrupt(tree, stem, array):
    Image.fromarray(array).save(tree.label_dir("train2017") / f"{stem}.png")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            lambda tree: corrupt(tree, "outdoor", np.full((32, 32), 200, np.uint8)),
            r"label values \[200\] outside 0-181 and 255",
        ),
        (
            lambda tree: corrupt(tree, "outdoor", np.zeros((16, 32), np.uint8)),
            r"label map is 32x16 but its image outdoor.jpg is 32x32",
        ),
        (
            lambda tree: corrupt(tree, "outdoor", np.zeros((32, 32, 3), np.uint8)),
            r"mode RGB \(3 channels\); expected a single-channel PNG",
        ),
        (lambda tree: (tree.label_dir("train2017") / "outdoor.png").unlink(), r"label map of outdoor.jpg is missing"),
        (lambda tree: (tree.label_dir("train2017") / "outdoor.png").write_bytes(b"not a png"), r"not a readable PNG"),
    ],
    ids=["value-outside-range", "size-mismatch", "multi-channel", "missing", "unreadable"],
)
def test_each_label_map_problem_names_the_file_or_is_skipped_and_counted(tmp_path, damage, message):
    tree = write_tree(
        tmp_path,
        {
            "outdoor": ("train2017", plain(stripes(("sky-other", 0.5), ("grass", 0.5)))),
            "other": ("train2017", plain(stripes(("sky-other", 0.5), ("sea", 0.5)))),
        },
    )
    damage(tree)
    with pytest.raises(LabelMapError, match=message) as error:
        filter_scenes(tree, CONFIG)
    assert "outdoor" in str(error.value)
    kept, report = filter_scenes(tree, FilterConfig(on_invalid="skip"))
    assert list(kept["file_name"]) == ["other.jpg"] and report["removed"]["invalid"] == 1


def test_image_without_annotations_is_an_error(tmp_path):
    tree = write_tree(tmp_path, {"empty": ("train2017", plain(stripes((None, 1.0))))})
    with pytest.raises(LabelMapError, match="empty.jpg: image has no annotations in .*stuff_train2017.json"):
        filter_scenes(tree, CONFIG)
