"""Retrieval by label histogram intersection (Sec. 4, retrieving task's top-N pool; footnote 2's user-study
top-percentile pool)."""

import numpy as np
import pytest

from egsynth.data import cocostuff
from egsynth.data.labels import UNLABELED_INDEX
from egsynth.evaluation.retrieval import (
    choose_candidates,
    histogram_intersection,
    label_histogram,
    percentile_pool,
    top_n_pool,
)

INDEX = cocostuff.label_value_to_index()
SKY, GRASS, SEA, ROAD = (INDEX[cocostuff.category(name).label_value] for name in ("sky-other", "grass", "sea", "road"))


def label_map(*parts: tuple[int, float], size: int = 20) -> np.ndarray:
    """Rows of classes from top to bottom: (class index, fraction of the rows)."""
    rows = np.concatenate([np.full(round(fraction * size), index) for index, fraction in parts])
    assert len(rows) == size
    return np.repeat(rows[:, None], size, axis=1).astype(np.uint8)  # [size, size]


def test_label_histogram_is_the_fraction_of_labeled_pixels_per_class():
    hist = label_histogram(label_map((SKY, 0.25), (GRASS, 0.75)))
    assert hist.shape == (cocostuff.NUM_CLASSES,)
    assert hist[SKY] == pytest.approx(0.25) and hist[GRASS] == pytest.approx(0.75)
    assert hist.sum() == pytest.approx(1.0)


def test_intersection_of_identical_fully_labeled_histograms_is_one():
    hist = label_histogram(label_map((SKY, 0.3), (SEA, 0.2), (GRASS, 0.5)))
    assert histogram_intersection(hist, hist[None]) == pytest.approx([1.0])


def test_intersection_of_disjoint_classes_is_zero():
    target = label_histogram(label_map((SKY, 0.5), (GRASS, 0.5)))
    other = label_histogram(label_map((SEA, 0.5), (ROAD, 0.5)))
    assert histogram_intersection(target, other[None]) == pytest.approx([0.0])


def test_unlabeled_pixels_are_ignored():
    partly = label_map((SKY, 0.5), (UNLABELED_INDEX, 0.5))
    assert label_histogram(partly)[SKY] == pytest.approx(1.0)
    fully = label_histogram(label_map((SKY, 1.0)))
    assert histogram_intersection(label_histogram(partly), fully[None]) == pytest.approx([1.0])


def test_a_map_with_nothing_labeled_has_an_empty_histogram():
    assert not label_histogram(label_map((UNLABELED_INDEX, 1.0))).any()


def test_label_histogram_rejects_indices_beyond_the_classes():
    with pytest.raises(ValueError, match="class indices"):
        label_histogram(np.full((4, 4), cocostuff.NUM_CLASSES, np.uint8))


POOL = [
    label_map((SEA, 1.0)),  # 0: shares nothing
    label_map((SKY, 1.0)),  # 1: 0.5
    label_map((SKY, 0.5), (GRASS, 0.5)),  # 2: 1.0, the same histogram
    label_map((SKY, 0.25), (GRASS, 0.75)),  # 3: 0.75
    label_map((SKY, 0.5), (ROAD, 0.5)),  # 4: 0.5
    label_map((GRASS, 0.9), (SEA, 0.1)),  # 5: 0.5
]


@pytest.fixture
def half_sky_half_grass() -> tuple[np.ndarray, np.ndarray]:
    return label_histogram(label_map((SKY, 0.5), (GRASS, 0.5))), np.stack([label_histogram(m) for m in POOL])


def test_pool_maps_come_in_order_of_shared_sky_and_grass_ties_by_index(half_sky_half_grass):
    target, pool = half_sky_half_grass
    assert histogram_intersection(target, pool) == pytest.approx([0.0, 0.5, 1.0, 0.75, 0.5, 0.5])
    assert percentile_pool(target, pool, percentile=100).tolist() == [2, 3, 1, 4, 5, 0]


def test_excluded_entries_are_never_returned(half_sky_half_grass):
    target, pool = half_sky_half_grass
    exclude = np.zeros(len(POOL), dtype=bool)
    exclude[2] = True  # the target itself
    assert percentile_pool(target, pool, percentile=100, exclude=exclude).tolist() == [3, 1, 4, 5, 0]
    assert percentile_pool(target, pool, percentile=1, exclude=exclude).tolist() == [3]


@pytest.mark.parametrize("size", [1, 3, 6, 9])
def test_the_top_n_pool_is_the_n_greatest_intersections_best_first(half_sky_half_grass, size):
    target, pool = half_sky_half_grass
    ranked = [2, 3, 1, 4, 5, 0]  # intersections 1, 0.75, then 0.5 three times (by index), then 0
    assert top_n_pool(target, pool, size=size).tolist() == ranked[:size]
    exclude = np.arange(len(POOL)) == 2  # the target itself
    assert top_n_pool(target, pool, size=size, exclude=exclude).tolist() == ranked[1:][:size]
    with pytest.raises(ValueError, match="at least 1"):
        top_n_pool(target, pool, size=0)


@pytest.mark.parametrize(
    ("percentile", "excluded", "size"), [(20, 0, 2), (50, 0, 5), (100, 0, 10), (1, 0, 1), (20, 1, 2), (10, 1, 1)]
)
def test_pool_size_follows_the_percentile_of_the_eligible_entries(percentile, excluded, size):
    rng = np.random.default_rng(0)
    pool = rng.dirichlet(np.ones(cocostuff.NUM_CLASSES), size=10)  # [10, C]
    exclude = np.arange(10) < excluded
    chosen = percentile_pool(pool[0], pool, percentile=percentile, exclude=exclude)
    assert len(chosen) == size
    scores = histogram_intersection(pool[0], pool)
    left_out = np.setdiff1d(np.flatnonzero(~exclude), chosen)
    assert left_out.size == 0 or scores[chosen].min() >= scores[left_out].max()


@pytest.mark.parametrize("percentile", [0, -5, 100.5])
def test_percentile_pool_rejects_a_percentile_outside_0_to_100(half_sky_half_grass, percentile):
    target, pool = half_sky_half_grass
    with pytest.raises(ValueError, match="percentile"):
        percentile_pool(target, pool, percentile=percentile)


def test_percentile_pool_rejects_mismatched_shapes(half_sky_half_grass):
    target, pool = half_sky_half_grass
    with pytest.raises(ValueError, match="histograms"):
        percentile_pool(target[:-1], pool, percentile=20)
    with pytest.raises(ValueError, match="exclude"):
        percentile_pool(target, pool, percentile=20, exclude=np.zeros(len(POOL) + 1, dtype=bool))
    with pytest.raises(ValueError, match="eligible"):
        percentile_pool(target, pool, percentile=20, exclude=np.ones(len(POOL), dtype=bool))


def test_choose_candidates_is_a_seeded_subset_in_pool_order():
    pool = np.array([7, 3, 9, 1, 4, 8, 2])  # best first
    first = choose_candidates(pool, count=4, rng=np.random.default_rng(5))
    again = choose_candidates(pool, count=4, rng=np.random.default_rng(5))
    assert first.tolist() == again.tolist()
    assert len(set(first.tolist())) == 4 and set(first.tolist()) <= set(pool.tolist())
    positions = [pool.tolist().index(i) for i in first]
    assert positions == sorted(positions)
    draws = {tuple(choose_candidates(pool, count=4, rng=np.random.default_rng(seed))) for seed in range(10)}
    assert len(draws) > 1  # not always the head of the pool


def test_choose_candidates_returns_the_whole_pool_when_it_is_small():
    pool = np.array([5, 2, 8])
    assert choose_candidates(pool, count=8, rng=np.random.default_rng(0)).tolist() == [5, 2, 8]
    with pytest.raises(ValueError, match="count"):
        choose_candidates(pool, count=0, rng=np.random.default_rng(0))
