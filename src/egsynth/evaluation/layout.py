"""Layout fidelity, SPADE's measure: does the synthesized image keep the target label map c1?

The pipeline's parser (`models/parser.pt`, the one that parses the exemplars) segments each output
x̂_{2→1}, and the parse is scored against c1 by mIoU with the conventions of `egsynth.parsing.metrics`
(the parser's own test mIoU): one confusion matrix accumulated over a task's cases, rows c1 and
columns the parse, target pixels without a label ignored; the IoU TP / (TP + FP + FN) averaged over
the classes that occur in c1 or in the parse of that task. The same score on the ground-truth images
is the ceiling a perfect synthesizer would reach with this parser.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.classification import MulticlassConfusionMatrix

from egsynth.data.cocostuff import NUM_CLASSES
from egsynth.data.labels import UNLABELED_INDEX
from egsynth.parsing.metrics import miou_from_confusion
from egsynth.parsing.parser import Parser


class LayoutFidelity(nn.Module):
    """mIoU of the parser's labels of images against their target labels, accumulated by `update`."""

    def __init__(self, parser: Parser, *, num_classes: int = NUM_CLASSES):
        super().__init__()
        if parser.model is None:
            raise ValueError(f"layout fidelity needs a parser network; the {parser.label} parser has none")
        self.label = f"the {parser.label} parser on the images, against the target labels"
        self.parser = parser.model.eval()
        self.image_size = parser.image_size
        self.confusion = MulticlassConfusionMatrix(num_classes, ignore_index=UNLABELED_INDEX)

    @torch.no_grad()
    def parse(self, images: Tensor) -> Tensor:
        """Images [B, 3, H, W] in [-1, 1] -> class indices [B, H, W], as `parsing.parser.predict_labels` parses a
        file: resized (antialiased bilinear) to the parser's input size, logits resized back (bilinear)."""
        size = images.shape[-2:]
        side = (self.image_size, self.image_size)
        inputs = images
        if tuple(size) != side:
            inputs = F.interpolate(images, side, mode="bilinear", antialias=True, align_corners=False)  # [B, 3, S, S]
        logits = self.parser(inputs)["out"]  # [B, C, S, S]
        if tuple(logits.shape[-2:]) != tuple(size):
            logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)  # [B, C, H, W]
        return logits.argmax(dim=1)  # [B, H, W]

    def update(self, images: Tensor, target_labels: Tensor) -> None:
        """Add images [B, 3, H, W] in [-1, 1] and their target labels, class indices [B, H, W]
        (`UNLABELED_INDEX` where unlabeled)."""
        self.confusion.update(self.parse(images), target_labels.long())

    def compute(self) -> float:
        """mIoU over the images since the last `reset` (NaN if no class occurs)."""
        return miou_from_confusion(self.confusion.compute().cpu().numpy())

    def reset(self) -> None:
        self.confusion.reset()
