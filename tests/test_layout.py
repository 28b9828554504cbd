import pytest
import torch
from torch import nn

from egsynth.data.labels import UNLABELED_INDEX
from egsynth.evaluation.layout import LayoutFidelity
from egsynth.parsing.parser import Parser


class ColorParser(nn.Module):
    """Labels each pixel with the index of its brightest channel (red 0, green 1, blue 2)."""

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"out": images}


def parser(image_size: int) -> Parser:
    return Parser(label="color", source="train", model=ColorParser(), architecture="color", image_size=image_size)


def painted(indices: torch.Tensor) -> torch.Tensor:
    """Class indices [B, H, W] in 0..2 -> images [B, 3, H, W], class k pure channel k."""
    return torch.nn.functional.one_hot(indices, 3).permute(0, 3, 1, 2).float() * 2 - 1


def test_miou_of_a_hand_made_confusion():
    layout = LayoutFidelity(parser(2), num_classes=3)
    target = torch.tensor([[[0, 0], [1, UNLABELED_INDEX]]])
    layout.update(painted(torch.zeros(1, 2, 2, dtype=torch.long)), target)  # everything parsed as class 0
    # class 0: TP 2, FP 1 -> 2/3; class 1: FN 1 -> 0; class 2 occurs nowhere and is skipped
    assert layout.compute() == pytest.approx(1 / 3)


def test_a_perfect_parse_scores_one_and_accumulates_until_reset():
    layout = LayoutFidelity(parser(8), num_classes=3)
    target = torch.randint(0, 3, (2, 8, 8))
    layout.update(painted(target), target)
    assert layout.compute() == pytest.approx(1.0)
    layout.update(painted((target + 1) % 3), target)  # an all-wrong second batch lowers the accumulated score
    assert layout.compute() < 1.0
    layout.reset()
    layout.update(painted(target), target)
    assert layout.compute() == pytest.approx(1.0)


def test_images_are_parsed_at_the_parsers_own_size_and_labelled_back_at_theirs():
    layout = LayoutFidelity(parser(16), num_classes=3)
    target = torch.zeros(1, 8, 8, dtype=torch.long)
    target[:, :, 4:] = 2  # two halves: resizing to 16 and back keeps them
    parsed = layout.parse(painted(target))
    assert parsed.shape == (1, 8, 8) and torch.equal(parsed, target)


def test_the_oracle_has_no_network_to_parse_with():
    with pytest.raises(ValueError, match="oracle parser has none"):
        LayoutFidelity(Parser(label="oracle", source="oracle"))
