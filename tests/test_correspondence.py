"""Dense SIFT correspondence energy (SIFT Flow's role in Sec. 4's retrieving task)."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from egsynth.data import procedural
from egsynth.evaluation.correspondence import correspondence, energy, rank_candidates

SIZE, MARGIN = 64, 8
SHIFT = (3, -4)  # the candidate's window moves by this, so target pixel p matches candidate pixel p - SHIFT


@pytest.fixture(autouse=True)
def one_thread():
    """One thread: the solver runs thousands of small ops, which stall on a shared, busy CPU otherwise."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def texture(seed: int, size: int) -> np.ndarray:
    """Smooth color noise plus slanted stripes: uint8 [size, size, 3]."""
    rng = np.random.default_rng(seed)
    noise = ndimage.gaussian_filter(rng.standard_normal((size, size, 3)), sigma=(2, 2, 0))
    yy, xx = np.mgrid[:size, :size]
    stripes = np.sin(2 * np.pi * (yy * rng.uniform(0.02, 0.1) + xx * rng.uniform(0.02, 0.1)))
    image = 0.5 + 0.15 * noise / noise.std() + 0.15 * stripes[..., None]
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


def scene(seed: int, size: int = SIZE) -> np.ndarray:
    return procedural.render(procedural.sample_layout(seed, "outdoor"), procedural.sample_style(seed), seed, size, size)


def window_pair(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two SIZE windows of a larger image, the second moved by SHIFT."""
    dy, dx = SHIFT
    target = image[MARGIN : MARGIN + SIZE, MARGIN : MARGIN + SIZE]
    moved = image[MARGIN + dy : MARGIN + dy + SIZE, MARGIN + dx : MARGIN + dx + SIZE]
    return target, moved


def test_a_shifted_copy_matches_better_than_an_unrelated_image():
    target, moved = window_pair(texture(0, SIZE + 2 * MARGIN))
    shifted, unrelated = rank_candidates(target, [moved, texture(1, SIZE)])
    assert shifted.energy < 0.5 * unrelated.energy


def test_the_same_scene_in_another_window_matches_better_than_other_scenes():
    target, moved = window_pair(scene(3, SIZE + 2 * MARGIN))
    energies = [c.energy for c in rank_candidates(target, [scene(4), moved, scene(5)])]
    assert int(np.argmin(energies)) == 1


@pytest.mark.parametrize(("kind", "exact"), [("texture", 0.8), ("scene", 0.95)])
def test_the_flow_of_a_pure_shift_is_the_shift_in_the_interior(kind, exact):
    """Exact for most interior pixels; weak texture leaves a few where coarse levels went astray."""
    make = {"texture": lambda: texture(0, SIZE + 2 * MARGIN), "scene": lambda: scene(3, SIZE + 2 * MARGIN)}[kind]
    target, moved = window_pair(make())
    flow = correspondence(target, moved).flow[:, MARGIN:-MARGIN, MARGIN:-MARGIN]  # [2, h, w]
    expected = -np.array(SHIFT)[:, None, None]
    assert np.median(flow, axis=(1, 2)).tolist() == (-np.array(SHIFT)).tolist()
    assert np.all(flow == expected, axis=0).mean() >= exact


def test_identical_images_give_zero_flow_and_the_lowest_energy():
    target, moved = window_pair(scene(3, SIZE + 2 * MARGIN))
    same, shifted, other = rank_candidates(target, [target, moved, scene(6)])
    assert not same.flow.any()
    assert same.energy == pytest.approx(0.0, abs=1e-6)
    assert same.energy < shifted.energy < other.energy


def test_icm_never_increases_the_energy():
    """With one level, iterations=0 is ICM's start (the unary winner) and each sweep continues it."""
    target, other = scene(7), scene(8)
    runs = [correspondence(target, other, levels=1, iterations=n) for n in (0, 1, 2, 3, 5, 8)]
    energies = np.array([energy(target, other, run.flow) for run in runs])
    assert np.all(np.diff(energies) <= 1e-6)
    assert energies[-1] < energies[0] - 0.1  # and the sweeps do lower it


def test_icm_lowers_the_energy_of_the_coarse_to_fine_unary_winner():
    target, other = texture(2, SIZE), texture(3, SIZE)
    winner = correspondence(target, other, iterations=0)
    settled = correspondence(target, other)
    assert settled.energy < winner.energy


def test_a_flow_leaving_the_image_pays_the_data_truncation_everywhere():
    flow = np.zeros((2, SIZE, SIZE), dtype=np.int64)
    flow[0] = SIZE  # every target pixel points below the candidate, with no flow discontinuity
    value = energy(scene(1), scene(2), flow, alpha=1.0, eta=0.01, data_truncation=4.0, smooth_truncation=4.0)
    assert value == pytest.approx(4.0 + 0.01 * SIZE)


def test_the_reported_energy_is_the_energy_of_the_returned_flow():
    target, other = scene(9), scene(10)
    match = correspondence(target, other)
    assert match.flow.shape == (2, SIZE, SIZE)
    assert match.energy == pytest.approx(energy(target, other, match.flow), rel=1e-9)


def test_ranking_a_batch_equals_matching_each_candidate_alone():
    target, candidates = scene(11), [scene(12), texture(4, SIZE), scene(13)]
    batched = rank_candidates(target, candidates)
    for match, candidate in zip(batched, candidates, strict=True):
        alone = correspondence(target, candidate)
        assert match.energy == pytest.approx(alone.energy, rel=1e-9)
        np.testing.assert_array_equal(match.flow, alone.flow)


def test_images_of_different_sizes_are_rejected():
    with pytest.raises(ValueError, match="like the target"):
        correspondence(scene(1), scene(1, size=48))
    with pytest.raises(ValueError, match="uint8"):
        correspondence(scene(1).astype(np.float32), scene(1))


def test_candidates_get_the_same_flow_and_energy_in_any_chunk():
    target = scene(3)
    candidates = [scene(seed) for seed in (4, 5, 6, 7, 8)]
    whole = rank_candidates(target, candidates, levels=2)
    for chunk in (1, 2):
        chunked = rank_candidates(target, candidates, levels=2, chunk=chunk)
        assert [c.energy for c in chunked] == [c.energy for c in whole]
        assert all(np.array_equal(a.flow, b.flow) for a, b in zip(chunked, whole, strict=True))
