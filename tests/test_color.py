"""Color correction of the retrieving task's ground truth toward the exemplar (Sec. 4, [47])."""

import numpy as np
import pytest
from skimage.color import rgb2lab

from egsynth.data import procedural
from egsynth.evaluation.color import color_transfer


def scene(seed: int, height: int = 64, width: int = 64) -> np.ndarray:
    return procedural.render(
        procedural.sample_layout(seed, "outdoor"), procedural.sample_style(seed), seed, height, width
    )


def lab_moments(image: np.ndarray) -> np.ndarray:
    """Per-channel mean and std in CIELAB, by an independent implementation: [6]."""
    lab = rgb2lab(image).reshape(-1, 3)
    return np.concatenate([lab.mean(0), lab.std(0)])


@pytest.mark.parametrize(("seed", "reference_seed"), [(0, 5), (1, 2), (3, 4)])
def test_transfer_moves_the_lab_statistics_to_the_reference(seed, reference_seed):
    image, reference = scene(seed), scene(reference_seed, height=48, width=80)
    before = np.abs(lab_moments(image) - lab_moments(reference)).max()
    after = np.abs(lab_moments(color_transfer(image, reference)) - lab_moments(reference)).max()
    assert after < 0.05 * before
    assert after < 0.5  # Lab units; what is left comes from rounding to uint8 and gamut clipping


def rgb_mean(image: np.ndarray) -> np.ndarray:
    return image.reshape(-1, 3).astype(float).mean(0)


def test_transfer_moves_the_rgb_means_toward_the_reference():
    image, reference = scene(0), scene(5)
    before = np.abs(rgb_mean(image) - rgb_mean(reference))
    after = np.abs(rgb_mean(color_transfer(image, reference)) - rgb_mean(reference))
    assert np.all(after < 0.1 * before + 1.0)


def test_a_night_scene_toward_a_day_scene_gets_as_bright_as_the_day():
    night = procedural.render(
        procedural.sample_layout(0, "outdoor"), procedural.Style.from_fields(time_of_day=0.05), 0, 64, 64
    )
    day = procedural.render(
        procedural.sample_layout(1, "outdoor"), procedural.Style.from_fields(time_of_day=1.0), 1, 64, 64
    )
    corrected = color_transfer(night, day)
    assert corrected.mean() > night.mean() + 50
    assert abs(corrected.mean() - day.mean()) < 5


def test_transferring_an_image_to_itself_is_the_identity():
    image = scene(2)
    assert np.abs(color_transfer(image, image).astype(int) - image).max() <= 1


def test_output_is_uint8_with_the_input_shape_whatever_the_reference_size():
    out = color_transfer(scene(0, height=40, width=56), scene(1, height=72, width=24))
    assert out.dtype == np.uint8 and out.shape == (40, 56, 3)


def test_a_flat_image_takes_the_reference_mean_color():
    reference = scene(4)
    out = color_transfer(np.full((16, 16, 3), 90, np.uint8), reference)
    assert len(np.unique(out.reshape(-1, 3), axis=0)) == 1  # still flat, no NaN noise
    assert np.abs(lab_moments(out)[:3] - lab_moments(reference)[:3]).max() < 0.5


def test_rejects_images_that_are_not_uint8_rgb():
    with pytest.raises(ValueError, match="uint8"):
        color_transfer(scene(0).astype(np.float32), scene(1))
    with pytest.raises(ValueError, match="uint8"):
        color_transfer(scene(0), scene(1)[..., 0])
