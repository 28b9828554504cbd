import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from egsynth.config import FilterConfig, ParserConfig, ScenesConfig
from egsynth.data import cocostuff
from egsynth.data.embedded import write_embedded_dataset
from egsynth.data.filtering import filter_scenes
from egsynth.data.labels import INDEX_TO_VALUE, UNLABELED_INDEX
from egsynth.parsing import (
    Parser,
    ParserError,
    SceneDataset,
    build_parser,
    class_iou,
    confusion_matrix,
    evaluate_parser,
    load_parser,
    make_parser,
    miou_from_confusion,
    parse_shard,
    pixel_accuracy,
    plan_shards,
    predict_labels,
    read_label_map,
    save_parser,
    train_parser,
)
from egsynth.parsing.parser import precise_batch_norm
from tests.cocotree import label_value

VALID_VALUES = {*map(int, INDEX_TO_VALUE), cocostuff.UNLABELED}
TINY = ParserConfig(image_size=32, epochs=1, batch_size=4, lr=1e-3, seed=0)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """A tiny embedded dataset (non-square images), filtered into a scenes table with absolute paths."""
    root = tmp_path_factory.mktemp("scenes")
    config = ScenesConfig(num_train=8, num_val=3, height=24, width=40, indoor_fraction=0, object_fraction=0, workers=1)
    write_embedded_dataset(config, root)
    kept, _ = filter_scenes(cocostuff.CocoStuffLayout(root), FilterConfig())
    assert set(kept["split"]) == {"train", "test"}
    return kept


@pytest.fixture(scope="module")
def untrained():
    """A freshly initialized network (eval mode), fast to run at image size 32."""
    torch.manual_seed(0)
    model = build_parser(TINY.architecture).eval()
    return Parser(label="untrained", source="train", model=model, architecture=TINY.architecture, image_size=32)


# ----------------------------------------------------------------------------
# metrics


def test_miou_averages_iou_over_classes_in_target_or_prediction_and_ignores_unlabeled():
    A, B, C = 0, 1, 2
    target = np.array([A, A, A, B, B, UNLABELED_INDEX])
    pred = np.array([A, B, B, B, B, C])  # the unlabeled pixel's prediction counts for nothing
    cm = confusion_matrix(pred, target, num_classes=4)
    assert cm.tolist() == [[1, 2, 0, 0], [0, 2, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]  # rows target, columns pred
    iou = class_iou(cm)
    assert iou[A] == pytest.approx(1 / 3) and iou[B] == pytest.approx(1 / 2)  # TP / (TP + FP + FN)
    assert np.isnan(iou[C]) and np.isnan(iou[3])  # absent from both target and prediction: no IoU
    assert miou_from_confusion(cm) == pytest.approx(5 / 12)
    assert pixel_accuracy(cm) == pytest.approx(3 / 5)


def test_a_class_only_predicted_counts_with_iou_zero():
    cm = confusion_matrix(np.array([[0, 1]]), np.array([[0, 0]]), num_classes=3)
    assert miou_from_confusion(cm) == pytest.approx((1 / 2 + 0) / 2)


def test_confusion_matrix_refuses_a_prediction_outside_the_classes_on_a_labelled_pixel():
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix(np.array([0, 7]), np.array([0, 1]), num_classes=3)


# ----------------------------------------------------------------------------
# data


def test_dataset_gives_images_in_unit_range_and_contiguous_targets(tmp_path):
    labels = np.full((10, 14), cocostuff.UNLABELED, np.uint8)
    labels[:5] = label_value("sky-other")
    labels[5:] = label_value("grass")
    labels[9, :] = cocostuff.UNLABELED
    Image.fromarray(np.full((10, 14, 3), 255, np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(labels).save(tmp_path / "a_labels.png")
    rows = pd.DataFrame({"image_path": [str(tmp_path / "a.png")], "label_path": [str(tmp_path / "a_labels.png")]})
    image, target = SceneDataset(rows, image_size=8)[0]
    assert image.shape == (3, 8, 8) and torch.allclose(image, torch.ones_like(image))
    index = cocostuff.label_value_to_index()
    assert target.dtype == torch.int64 and target.shape == (8, 8)
    assert set(target.unique().tolist()) == {
        index[label_value("sky-other")],
        index[label_value("grass")],
        UNLABELED_INDEX,
    }


# ----------------------------------------------------------------------------
# parser


def test_predict_labels_returns_each_image_at_its_original_size_with_valid_values(untrained):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(20, 30), (37, 23), (32, 32)]]
    parsed = predict_labels(untrained.model, images, image_size=32, batch_size=2)
    assert [p.shape for p in parsed] == [(20, 30), (37, 23), (32, 32)]
    assert all(p.dtype == np.uint8 and set(np.unique(p).tolist()) <= VALID_VALUES for p in parsed)
    assert not untrained.model.training


def test_a_parser_trained_one_epoch_parses_and_evaluates_to_scores_in_unit_range(scenes):
    parser, history = make_parser(TINY, scenes)
    assert parser.label == "lraspp_mobilenet_v3_large-trained" and not parser.model.training
    assert len(history["epoch_loss"]) == 1 and np.isfinite(history["epoch_loss"][0]) and history["steps"] >= 1
    scores = evaluate_parser(parser.parse, scenes[scenes["split"] == "test"])
    assert 0 <= scores["miou"] <= 1 and 0 <= scores["pixel_accuracy"] <= 1 and scores["classes_evaluated"] >= 1


def test_same_seed_gives_the_same_weights_and_another_seed_other_weights(scenes):
    four_train_scenes = scenes[scenes["split"] == "train"].head(4)  # two steps of two images

    def weights(seed):
        config = TINY.model_copy(update={"seed": seed, "batch_size": 2, "image_size": 16})
        model, history = train_parser(config, four_train_scenes, device="cpu")
        assert history["steps"] == 2
        return model.state_dict()

    first, again, other = weights(0), weights(0), weights(1)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_oracle_parses_into_exactly_the_ground_truth_and_scores_one(scenes):
    oracle, _ = make_parser(ParserConfig(source="oracle"), scenes)
    assert oracle.label == "oracle"
    for parsed, path in zip(oracle.parse(scenes), scenes["label_path"], strict=True):
        assert np.array_equal(parsed, read_label_map(path))
    scores = evaluate_parser(oracle.parse, scenes[scenes["split"] == "test"])
    assert scores["miou"] == 1.0 and scores["pixel_accuracy"] == 1.0


def test_checkpoint_source_names_a_missing_file(scenes, tmp_path):
    missing = tmp_path / "nowhere.pt"
    with pytest.raises(ParserError, match=str(missing)):
        make_parser(ParserConfig(source="checkpoint", checkpoint=missing), scenes)


def test_checkpoint_of_another_network_is_refused_naming_the_file(scenes, tmp_path):
    path = tmp_path / "five_classes.pt"
    torch.save(build_parser(TINY.architecture, num_classes=5).state_dict(), path)
    with pytest.raises(ParserError, match=rf"{path}: not a state dict of .* shape mismatches"):
        make_parser(ParserConfig(source="checkpoint", checkpoint=path), scenes)


def test_checkpoint_source_loads_a_state_dict_and_is_labelled_by_its_file(untrained, scenes, tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(untrained.model.state_dict(), path)
    config = ParserConfig(source="checkpoint", checkpoint=path, image_size=32)
    parser, history = make_parser(config, scenes, device="cpu")
    assert parser.label == "checkpoint:weights.pt" and history == {}
    loaded, original = parser.model.state_dict(), untrained.model.state_dict()
    assert all(torch.equal(loaded[k], original[k]) for k in original)


def test_saved_parser_loads_with_weights_only_and_parses_the_same(untrained, scenes, tmp_path):
    save_parser(untrained, tmp_path / "parser.pt")
    payload = torch.load(tmp_path / "parser.pt", weights_only=True)
    assert payload.keys() == {"label", "source", "num_classes", "architecture", "image_size", "state_dict"}
    loaded = load_parser(tmp_path / "parser.pt", device="cpu")
    assert (loaded.label, loaded.image_size) == ("untrained", 32)
    for a, b in zip(loaded.parse(scenes), untrained.parse(scenes), strict=True):
        assert np.array_equal(a, b)

    save_parser(Parser(label="oracle", source="oracle"), tmp_path / "oracle.pt")
    assert "state_dict" not in torch.load(tmp_path / "oracle.pt", weights_only=True)
    assert load_parser(tmp_path / "oracle.pt").model is None


# ----------------------------------------------------------------------------
# sharded parsing


def test_shards_parse_every_image_exactly_once_into_valid_label_maps(untrained, scenes, tmp_path):
    shards = plan_shards(scenes, shard_size=3)
    assert [len(s) for s in shards] == [3] * (len(scenes) // 3) + ([len(scenes) % 3] if len(scenes) % 3 else [])
    index = pd.concat([parse_shard(untrained, shard, tmp_path, batch_size=2) for shard in shards])
    assert sorted(index["image_id"]) == sorted(scenes["image_id"]) and index["image_id"].is_unique
    assert set(index["parser"]) == {"untrained"}
    assert len(list(tmp_path.rglob("*.png"))) == len(scenes)
    expected = scenes.set_index("image_id")
    for row in index.itertuples():
        parsed = read_label_map(row.parsed_path)
        assert row.split == expected.loc[row.image_id, "split"]
        assert parsed.shape == (expected.loc[row.image_id, "height"], expected.loc[row.image_id, "width"])
        assert set(np.unique(parsed).tolist()) <= VALID_VALUES


def test_oracle_shard_writes_copies_of_the_ground_truth_and_records_the_final_directory(scenes, tmp_path):
    index = parse_shard(Parser(label="oracle", source="oracle"), scenes, tmp_path, recorded_dir="data/parsed")
    assert set(index["parser"]) == {"oracle"}
    for scene, path in zip(scenes.itertuples(), index["parsed_path"], strict=True):
        assert path.startswith(f"data/parsed/{scene.split}/")
        written = tmp_path / path.removeprefix("data/parsed/")
        assert np.array_equal(read_label_map(written), read_label_map(scene.label_path))


def test_plan_shards_refuses_two_scenes_parsed_into_one_file():
    scenes = pd.DataFrame({"split": ["train", "train", "test"], "file_name": ["a.jpg", "a.png", "a.jpg"]})
    with pytest.raises(ValueError, match="train/a.png"):
        plan_shards(scenes, shard_size=2)


def test_precise_batch_norm_sets_running_statistics_to_the_average_over_the_batches():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1), torch.nn.BatchNorm2d(2, momentum=0.01))
    batches = [(torch.randn(4, 1, 3, 3) * scale + shift, None) for scale, shift in [(1, 0), (2, 5), (3, -1)]]
    with torch.no_grad():
        features = [model[0](images) for images, _ in batches]
    assert precise_batch_norm(model.eval(), batches, device="cpu", max_batches=2) == 2
    expected = torch.stack([f.mean(dim=(0, 2, 3)) for f in features[:2]]).mean(0)
    assert torch.allclose(model[1].running_mean, expected, atol=1e-6)
    assert model[1].momentum == 0.01 and not model.training
