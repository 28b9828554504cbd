"""Label values <-> class indices (`egsynth.data.labels`) <-> one-hot maps, images <-> tensors (`data.encoding`)."""

import warnings

import numpy as np
import pytest
import torch

from egsynth.data import cocostuff
from egsynth.data.encoding import one_hot, to_image, to_image_tensor, to_label_indices
from egsynth.data.labels import (
    INDEX_TO_VALUE,
    UNLABELED_INDEX,
    VALUE_TO_INDEX,
    label_indices,
    label_values,
    unknown_label_values,
)

C = 5  # classes of the hand-built cases
ALL_VALUES = np.arange(256, dtype=np.uint8)
UNUSED_ID_VALUE = 11  # COCO id 12 (street sign) is no COCO-stuff class

# ---------------------------------------------------------------------------------------------
# label values <-> class indices


def test_every_class_value_round_trips_through_its_contiguous_index():
    indices = label_indices(INDEX_TO_VALUE)
    assert indices.dtype == np.uint8
    np.testing.assert_array_equal(indices, np.arange(cocostuff.NUM_CLASSES))
    np.testing.assert_array_equal(label_values(indices), INDEX_TO_VALUE)
    assert all(VALUE_TO_INDEX[value] == index for value, index in cocostuff.label_value_to_index().items())


def test_unlabeled_and_values_of_no_class_become_the_one_sentinel():
    values = np.array([[0, cocostuff.UNLABELED], [UNUSED_ID_VALUE, 182]], dtype=np.uint8)
    assert label_indices(values).tolist() == [[0, UNLABELED_INDEX], [UNLABELED_INDEX, UNLABELED_INDEX]]
    assert label_values(label_indices(values)).tolist() == [[0, 255], [255, 255]]  # unknown values read as unlabeled


def test_unknown_values_are_listed_once_ascending_and_unlabeled_is_not_one():
    values = np.array([[254, UNUSED_ID_VALUE, 254], [0, cocostuff.UNLABELED, 181]], dtype=np.uint8)
    assert unknown_label_values(values) == [UNUSED_ID_VALUE, 254]
    assert unknown_label_values(INDEX_TO_VALUE) == []
    assert unknown_label_values(np.array([cocostuff.UNLABELED], np.uint8)) == []
    known = 256 - len(unknown_label_values(ALL_VALUES))
    assert known == cocostuff.NUM_CLASSES + 1  # every class's value, and unlabeled


def test_the_sentinel_is_no_class_index_and_any_index_beyond_the_classes_reads_as_unlabeled():
    assert UNLABELED_INDEX >= cocostuff.NUM_CLASSES
    assert (label_indices(ALL_VALUES) <= cocostuff.NUM_CLASSES - 1).sum() == cocostuff.NUM_CLASSES
    beyond = np.array([UNLABELED_INDEX, cocostuff.NUM_CLASSES, 200], dtype=np.uint8)
    assert label_values(beyond).tolist() == [cocostuff.UNLABELED] * 3


# ---------------------------------------------------------------------------------------------
# class indices <-> one-hot


def test_one_hot_of_a_batch_leaves_unlabeled_pixels_empty():
    indices = torch.tensor([[[0, 255], [170, 3]]] * 2)  # [2, 2, 2]
    encoded = one_hot(indices)
    assert encoded.shape == (2, cocostuff.NUM_CLASSES, 2, 2) and encoded.is_contiguous()
    assert encoded.sum(1).tolist() == [[[1, 0], [1, 1]]] * 2
    assert encoded[0, 170, 1, 0] == 1 and encoded[1, 3, 1, 1] == 1


def test_class_indices_round_trip_through_one_hot_with_the_sentinel_kept():
    generator = torch.Generator().manual_seed(0)
    indices = torch.randint(0, C, (6, 7), generator=generator, dtype=torch.uint8)
    indices[torch.rand(6, 7, generator=generator) < 0.3] = UNLABELED_INDEX
    np.testing.assert_array_equal(to_label_indices(one_hot(indices, C)), indices.numpy())


def test_tensors_convert_to_images_and_label_indices():
    indices = torch.tensor([[0, 3], [UNLABELED_INDEX, 4]])
    assert to_label_indices(one_hot(indices, C)).tolist() == [[0, 3], [UNLABELED_INDEX, 4]]
    image = to_image(torch.tensor([-1.0, 0.0, 1.0]).reshape(3, 1, 1).expand(3, 2, 2))
    assert image.dtype == np.uint8 and image.shape == (2, 2, 3) and image[0, 0].tolist() == [0, 128, 255]


# ---------------------------------------------------------------------------------------------
# images <-> tensors


def test_images_round_trip_through_model_tensors():
    image = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    x = to_image_tensor(image)
    assert x.shape == (3, 5, 7) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1
    assert to_image_tensor(np.array([[[0, 255, 0]]], np.uint8)).flatten().tolist() == [-1.0, 1.0, -1.0]
    np.testing.assert_array_equal(to_image(x), image)


@pytest.mark.parametrize("layout", ["flipped", "read-only"])
def test_flipped_and_read_only_arrays_convert_silently_and_alike(layout):
    image = np.random.default_rng(1).integers(0, 256, (4, 6, 3), dtype=np.uint8)
    if layout == "flipped":
        given, expected = image[:, ::-1], np.ascontiguousarray(image[:, ::-1])
    else:
        given, expected = image.copy(), image
        given.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x = to_image_tensor(given)
    assert torch.equal(x, to_image_tensor(expected))
