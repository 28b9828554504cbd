import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from egsynth.config import FilterConfig, ScenesConfig, TasksConfig
from egsynth.data import procedural
from egsynth.data.cocostuff import CocoStuffLayout
from egsynth.data.datasets import read_image
from egsynth.data.embedded import SIDECAR_NAME, write_embedded_dataset
from egsynth.data.encoding import to_image_tensor
from egsynth.data.filtering import filter_scenes
from egsynth.data.labels import UNLABELED_INDEX, label_values, read_label_indices
from egsynth.evaluation.cases import CANDIDATES_NAME, CASES_NAME, TASKS
from egsynth.evaluation.retrieval import histogram_intersection, label_histogram
from egsynth.evaluation.tasks import CaseDataset, build_tasks, select_test_scenes, swap_partners

SIZE = 32
CONFIG = TasksConfig(seed=0, max_scenes=None, retrieval_pool_size=3, correspondence_levels=2)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("scenes")
    write_embedded_dataset(ScenesConfig(num_train=14, num_val=8, height=48, width=48, workers=1), root)
    scenes, _ = filter_scenes(CocoStuffLayout(root), FilterConfig())
    return scenes, pd.read_parquet(root / SIDECAR_NAME)


@pytest.fixture(scope="module")
def built(dataset, tmp_path_factory):
    scenes, sidecar = dataset
    out = tmp_path_factory.mktemp("eval")
    cases, candidates = build_tasks(scenes, None, sidecar, out, config=CONFIG, image_size=SIZE, recorded_dir=out)
    return scenes, sidecar, out, cases, candidates


def image(path) -> np.ndarray:
    with Image.open(path) as file:
        return np.array(file)


def test_every_test_scene_has_one_case_per_task(built):
    scenes, _, _, cases, _ = built
    test_ids = sorted(scenes.loc[scenes["split"] == "test", "image_id"])
    assert set(cases["task"]) == set(TASKS)
    for task in TASKS:
        assert sorted(cases.loc[cases["task"] == task, "image_id"]) == test_ids
    assert cases["case_id"].is_unique


def test_duplicating_exemplar_is_the_ground_truth_and_mirroring_its_mirror(built):
    scenes, *_, cases, _ = built
    by_id = scenes.set_index("image_id")
    for _, case in cases[cases["task"].isin(["duplicating", "mirroring"])].iterrows():
        truth = read_image(by_id.loc[case["image_id"], "image_path"], SIZE)
        np.testing.assert_array_equal(image(case["truth_path"]), truth)
        expected = truth if case["task"] == "duplicating" else truth[:, ::-1]
        np.testing.assert_array_equal(image(case["exemplar_path"]), expected)
        labels = read_label_indices(by_id.loc[case["image_id"], "label_path"], SIZE)  # oracle: parsed = truth
        np.testing.assert_array_equal(
            image(case["exemplar_labels_path"]),
            label_values(labels if case["task"] == "duplicating" else labels[:, ::-1]),
        )


def test_swap_ground_truth_equals_a_direct_render(built):
    scenes, sidecar, _, cases, _ = built
    meta = sidecar.set_index("image_id")
    for _, case in cases[cases["task"] == "swap"].iterrows():
        assert case["exemplar_id"] != case["image_id"]
        target, exemplar = meta.loc[case["image_id"]], meta.loc[case["exemplar_id"]]
        layout = procedural.sample_layout(int(target["layout_seed"]), target["kind"])
        style = procedural.Style(vector=np.asarray(exemplar["style"], dtype=np.float32))
        rendered = procedural.render(layout, style, int(target["texture_seed"]), 48, 48)
        expected = np.asarray(Image.fromarray(rendered).resize((SIZE, SIZE), Image.Resampling.BILINEAR))
        np.testing.assert_array_equal(image(case["truth_path"]), expected)


def test_swap_with_own_style_reproduces_the_scene(dataset):
    """The renderer is exact: a scene's layout in its own style is the scene itself (up to JPEG)."""
    scenes, sidecar = dataset
    row = sidecar.iloc[0]
    layout = procedural.sample_layout(int(row["layout_seed"]), row["kind"])
    own = procedural.render(
        layout, procedural.Style(vector=np.asarray(row["style"], np.float32)), int(row["texture_seed"]), 48, 48
    )
    stored = read_image(scenes.set_index("image_id").loc[int(row["image_id"]), "image_path"], 48)
    assert np.abs(own.astype(int) - stored.astype(int)).mean() < 3  # JPEG quality 95


def intersections_with_the_train_split(scenes: pd.DataFrame, image_id: int) -> pd.Series:
    """Label-histogram intersection of the target with every training image, by image id."""
    labels = scenes.set_index("image_id")["label_path"]
    train_ids = sorted(scenes.loc[scenes["split"] == "train", "image_id"])
    target = label_histogram(read_label_indices(labels.loc[image_id], SIZE))
    pool = np.stack([label_histogram(read_label_indices(labels.loc[i], SIZE)) for i in train_ids])
    return pd.Series(histogram_intersection(target, pool), index=train_ids)


def check_the_lowest_energy_is_chosen(group: pd.DataFrame, cases: pd.DataFrame, image_id: int) -> None:
    chosen = group[group["chosen"]]
    assert len(chosen) == 1 and chosen["energy"].iloc[0] == group["energy"].min()
    case = cases[(cases["task"] == "retrieving") & (cases["image_id"] == image_id)].iloc[0]
    assert case["exemplar_id"] == chosen["candidate_id"].iloc[0]


def test_retrieving_ranks_the_n_greatest_intersections_and_picks_the_lowest_energy(built):
    """Sec. 4: a pool of the greatest label-histogram intersections, the best match by SIFT Flow's energy."""
    scenes, _, _, cases, candidates = built
    retrieving = candidates[candidates["task"] == "retrieving"]
    for image_id, group in retrieving.groupby("image_id", sort=False):
        assert len(group) == CONFIG.retrieval_pool_size and group["candidate_id"].is_unique
        assert group["intersection"].is_monotonic_decreasing, "the pool in order of intersection"
        every = intersections_with_the_train_split(scenes, image_id)
        np.testing.assert_allclose(group["intersection"], every.loc[group["candidate_id"]])
        assert group["intersection"].min() >= every.drop(group["candidate_id"]).max() - 1e-12, "the N greatest"
        assert group["energy"].notna().all(), "every member ranked"
        check_the_lowest_energy_is_chosen(group, cases, image_id)


def test_the_user_study_setting_draws_its_candidates_from_the_top_percentile(dataset, tmp_path):
    """Footnote 2: exemplars from the top 20 percentile (here 50), drawn with the seed, then ranked."""
    scenes, _ = dataset
    config = CONFIG.model_copy(
        update={"retrieval_pool": "user_study_percentile", "pool_percentile": 50, "num_candidates": 3}
    )
    cases, candidates = build_tasks(scenes, None, None, tmp_path, config=config, image_size=SIZE, recorded_dir=tmp_path)
    for image_id, group in candidates.groupby("image_id"):
        assert len(group) == config.num_candidates
        every = intersections_with_the_train_split(scenes, image_id)
        assert (group["intersection"] >= np.percentile(every, 50) - 1e-9).all()
        check_the_lowest_energy_is_chosen(group, cases, image_id)


def test_retrieving_ground_truth_is_color_corrected_toward_the_exemplar(built):
    _, _, _, cases, _ = built

    def mean_color(array: np.ndarray) -> np.ndarray:
        return array.reshape(-1, 3).mean(0)

    for _, case in cases[cases["task"] == "retrieving"].iterrows():
        before, after = image(case["truth_uncorrected_path"]), image(case["truth_path"])
        exemplar = mean_color(image(case["exemplar_path"]))
        assert np.abs(mean_color(after) - exemplar).sum() <= np.abs(mean_color(before) - exemplar).sum() + 1.0


def test_tasks_are_identical_for_the_same_seed(built, dataset, tmp_path):
    scenes, sidecar = dataset
    _, _, out, cases, candidates = built
    again, again_candidates = build_tasks(
        scenes, None, sidecar, tmp_path, config=CONFIG, image_size=SIZE, recorded_dir=out
    )
    pd.testing.assert_frame_equal(again, cases)
    pd.testing.assert_frame_equal(again_candidates, candidates)
    for name in (CASES_NAME, CANDIDATES_NAME):
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / name), pd.read_parquet(out / name))


def test_without_the_sidecar_there_is_no_swap_task(dataset, tmp_path):
    scenes, _ = dataset
    cases, candidates = build_tasks(scenes, None, None, tmp_path, config=CONFIG, image_size=SIZE, recorded_dir=tmp_path)
    assert set(cases["task"]) == {"duplicating", "mirroring", "retrieving"}
    assert set(candidates["task"]) == {"retrieving"}


def test_test_subset_is_seeded_and_swap_partners_are_never_the_scene_itself():
    scenes = pd.DataFrame({"image_id": range(1, 21), "split": ["test"] * 20})
    first = select_test_scenes(scenes, max_scenes=5, seed=3)
    assert first.equals(select_test_scenes(scenes, max_scenes=5, seed=3))
    assert len(first) == 5 and first["image_id"].is_monotonic_increasing
    partners = swap_partners(np.arange(10), seed=0)
    assert sorted(partners.values()) == list(range(10))
    assert all(a != b for a, b in partners.items())


def test_label_encoding_round_trips_through_the_reader(tmp_path):
    indices = np.array([[0, 5, UNLABELED_INDEX], [170, 3, 1], [2, UNLABELED_INDEX, 100]], dtype=np.uint8)
    Image.fromarray(label_values(indices)).save(tmp_path / "labels.png")
    np.testing.assert_array_equal(read_label_indices(tmp_path / "labels.png", 3), indices)


def test_case_dataset_reads_the_written_case(built):
    _, _, _, cases, _ = built
    item = CaseDataset(cases, image_size=SIZE)[0]
    row = cases.iloc[0]
    assert item["labels"].dtype == torch.uint8 and item["labels"].shape == (SIZE, SIZE)
    torch.testing.assert_close(item["truth"], to_image_tensor(image(row["truth_path"])))
    torch.testing.assert_close(item["exemplar"], to_image_tensor(image(row["exemplar_path"])))
