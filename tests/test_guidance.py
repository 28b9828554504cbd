import math

import pytest
import torch

from egsynth.config import ModelConfig
from egsynth.data.encoding import one_hot
from egsynth.data.labels import UNLABELED_INDEX
from egsynth.evaluation.guidance import AttentionStatistics, attention_probe, normalized_entropy
from egsynth.models.generator import build_generator
from egsynth.models.msca import AttentionRecord

CLASSES = 3
EXEMPLAR = torch.tensor([[0, 0, 1, 1]] * 4)  # c~2 [4, 4]: class 0 on the left half, class 1 on the right
TARGET = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 2, 2], [UNLABELED_INDEX] * 4])  # class 2: not in c~2


def record(alpha: torch.Tensor, beta: torch.Tensor) -> AttentionRecord:
    return AttentionRecord(alpha=alpha[None], gate=torch.full((1, alpha.shape[0]), 0.1), beta=beta[None])


def statistics(alpha: torch.Tensor, beta: torch.Tensor) -> dict[str, float]:
    accumulated = AttentionStatistics()
    accumulated.add(record(alpha, beta), one_hot(EXEMPLAR[None], CLASSES), one_hot(TARGET[None], CLASSES))
    return accumulated.summary()


def class_beta(first: int, second: int) -> torch.Tensor:
    """β [2, 4, 4]: target pixels of class 0 attend to map `first`, all others to map `second`."""
    beta = torch.zeros(2, 4, 4)
    beta[first][TARGET == 0] = 1
    beta[second][TARGET != 0] = 1
    return beta


def one_pixel_alpha() -> torch.Tensor:
    """α [2, 4, 4]: map 0 on one exemplar pixel of class 0, map 1 on one of class 1."""
    alpha = torch.zeros(2, 4, 4)
    alpha[0, 2, 0] = 1
    alpha[1, 1, 3] = 1
    return alpha


def test_uniform_spatial_attention_has_entropy_one_and_one_pixel_attention_zero():
    uniform = torch.full((2, 5, 6, 7), 1 / 42)
    torch.testing.assert_close(normalized_entropy(uniform), torch.ones(2, 5))
    assert statistics(torch.full((2, 4, 4), 1 / 16), class_beta(0, 1))["entropy"] == pytest.approx(1.0)
    assert statistics(one_pixel_alpha(), class_beta(0, 1))["entropy"] == 0.0


def test_one_hot_attention_on_same_class_pixels_matches_fully_and_on_the_other_class_not_at_all():
    assert statistics(one_pixel_alpha(), class_beta(0, 1))["label_match"] == pytest.approx(1.0)
    assert statistics(one_pixel_alpha(), class_beta(1, 0))["label_match"] == pytest.approx(0.0)


def test_uniform_attention_matches_as_often_as_the_exemplar_has_the_class():
    # half the exemplar is each class, so attention spread evenly lands half on the right class
    assert statistics(torch.full((2, 4, 4), 1 / 16), class_beta(0, 1))["label_match"] == pytest.approx(0.5)


def test_label_match_counts_only_target_classes_present_in_the_exemplar():
    # class-2 target pixels attend (map 1) to class 1: they are not counted, so the match stays 1
    beta = class_beta(0, 1)
    assert statistics(one_pixel_alpha(), beta)["label_match"] == pytest.approx(1.0)
    mass_on_unlabeled = one_pixel_alpha()
    exemplar = EXEMPLAR.clone()
    exemplar[1, 3] = UNLABELED_INDEX  # map 1's pixel: mass there matches no class
    accumulated = AttentionStatistics()
    labels = one_hot(exemplar[None], CLASSES), one_hot(TARGET[None], CLASSES)
    accumulated.add(record(mass_on_unlabeled, beta), *labels)
    assert accumulated.summary()["label_match"] == pytest.approx(0.5)  # 4 class-0 pixels match, 4 class-1 do not


def test_statistics_pool_over_batches_and_need_spatial_and_channel_attention():
    accumulated = AttentionStatistics()
    labels = one_hot(EXEMPLAR[None], CLASSES), one_hot(TARGET[None], CLASSES)
    accumulated.add(record(one_pixel_alpha(), class_beta(0, 1)), *labels)
    accumulated.add(record(one_pixel_alpha(), class_beta(1, 0)), *labels)
    assert accumulated.summary() == {"entropy": 0.0, "label_match": pytest.approx(0.5)}
    assert all(math.isnan(v) for v in AttentionStatistics().summary().values())
    with pytest.raises(ValueError, match="spatial and channel attention"):
        accumulated.add(AttentionRecord(alpha=None, gate=None, beta=None), *labels)


TINY = ModelConfig(
    num_scales=1, attention_maps=(2, 2), image_channels=4, label_channels=4, style_dim=4, ngf=4, spade_hidden=4
)


def test_the_probe_measures_msca_generators_in_eval_mode_and_skips_the_others():
    batch = {
        "target_labels": one_hot(torch.randint(0, CLASSES, (2, 16, 16)), CLASSES),
        "exemplar": torch.rand(2, 3, 16, 16) * 2 - 1,
        "exemplar_labels": one_hot(torch.randint(0, CLASSES, (2, 16, 16)), CLASSES),
    }
    full = build_generator("full", TINY, num_classes=CLASSES).train()
    measured = attention_probe(full, batch, device=torch.device("cpu"))
    assert set(measured) == {"entropy", "label_match"} and all(0 <= v <= 1 for v in measured.values())
    assert full.training  # its mode is restored
    assert attention_probe(build_generator("gap", TINY, num_classes=CLASSES), batch, device=torch.device("cpu")) == {}
