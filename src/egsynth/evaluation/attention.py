"""What the learned attention transfers between semantic classes (appendix B, Figs. 10 and 12).

The finest MSCA moves exemplar features to target locations: V = F_x2 α^T (Eq. 5), Ṽ = V ∘ g (Eq. 6),
F_x1 = Ṽ β (Eq. 8). Appendix B feeds it the exemplar's one-hot labels c̃2 in place of F_x2, so that
F_x1 at a target pixel holds how much of each exemplar class arrives there. Summed over the target
pixels of each class, this is the transfer matrix of Fig. 10 (exemplar classes on rows, target
classes on columns); its rows, with the dominant diagonal damped, are the features that Fig. 12
clusters.

The finest scale is scale 0: `Generator.align` returns one record per scale, finest first
(`features.py`: scale i has resolution H / 2^i).
"""

from __future__ import annotations

import numpy as np
from einops import einsum, reduce
from torch import Tensor

from egsynth.data.cocostuff import NUM_CLASSES
from egsynth.models.features import resize_labels
from egsynth.models.msca import AttentionRecord, aggregate, distribute

FINEST_SCALE = 0
"""Index of the finest scale in `GeneratorOutput.attention` (appendix B uses this scale's MSCA)."""


class TransferMatrix:
    """The transfer matrix of Fig. 10, accumulated over batches of (exemplar, target) cases.

    `add` transfers c̃2 with a record's α, gate and β exactly as MSCA transfers F_x2 (Eq. 5, 6, 8).
    The gate is applied, as in the model: a map that feature masking switches off transfers nothing,
    so the matrix shows what actually reaches the target (records without a gate, e.g. hand-built
    ones, count it as 1; `no_fm` records carry a gate of exactly 1). Exemplar pixels without a label
    carry no class and unlabeled target pixels are not counted.
    """

    def __init__(self, *, num_classes: int = NUM_CLASSES):
        self.num_classes = num_classes
        self.mass = np.zeros((num_classes, num_classes))  # [C exemplar, C target], transferred pixels
        self.frequency = np.zeros(num_classes, dtype=np.int64)  # [C], labeled pixels in exemplars and targets

    def add(self, record: AttentionRecord, exemplar_labels: Tensor, target_labels: Tensor) -> None:
        """Accumulate one batch: c̃2 [B, C, H2, W2] and c1 [B, C, H1, W1] one-hot at any size (resized,
        nearest, to the record's α and β sizes) and the record of the finest scale."""
        if record.alpha is None or record.beta is None:
            raise ValueError("the transfer matrix needs spatial and channel attention; this record has none")
        assert exemplar_labels.dim() == target_labels.dim() == 4, "expects one-hot label maps [B, C, H, W]"
        assert exemplar_labels.shape[1] == target_labels.shape[1] == self.num_classes, (
            f"expects {self.num_classes} label channels, got {exemplar_labels.shape[1]} and {target_labels.shape[1]}"
        )
        alpha, beta = record.alpha.detach().float(), record.beta.detach().float()  # [B, K, H2, W2], [B, K, H1, W1]
        gate = alpha.new_ones(alpha.shape[:2]) if record.gate is None else record.gate.detach().float()  # [B, K]
        c2 = resize_labels(exemplar_labels.float(), alpha.shape[-2:])  # [B, C, H2, W2]
        c1 = resize_labels(target_labels.float(), beta.shape[-2:])  # [B, C, H1, W1]
        v = aggregate(c2, alpha)  # [B, C, K]: share of exemplar class e in attention map k (Eq. 5)
        transferred = distribute(v, gate, beta)  # [B, C, H1, W1]: exemplar class e arriving at each pixel
        mass = einsum(transferred, c1, "b e h w, b t h w -> e t")  # [C, C]
        self.mass += mass.double().cpu().numpy()
        pixels = reduce(exemplar_labels, "b c h w -> c", "sum") + reduce(target_labels, "b c h w -> c", "sum")  # [C]
        self.frequency += pixels.round().long().cpu().numpy()

    def ratios(self) -> np.ndarray:
        """[C exemplar, C target] with each column normalized to sum 1 (Fig. 10); 0 for absent targets."""
        total = self.mass.sum(axis=0, keepdims=True)  # [1, C]
        return np.divide(self.mass, total, out=np.zeros_like(self.mass), where=total > 0)

    def top_classes(self, k: int) -> np.ndarray:
        """The (at most) k classes with the most labeled pixels, most frequent first (Fig. 10 shows 20)."""
        order = np.argsort(-self.frequency, kind="stable")  # [C]
        return order[: min(k, int((self.frequency > 0).sum()))]


def dendrogram_features(ratios: np.ndarray) -> np.ndarray:
    """Appendix B, Fig. 12: each row of the transfer matrix is its exemplar class's feature vector, with
    the diagonal set to the row's second-largest value so that self-transfer does not dominate."""
    assert ratios.ndim == 2 and ratios.shape[0] == ratios.shape[1] >= 2, "expects a square matrix [C, C], C >= 2"
    features = np.array(ratios, dtype=np.float64)  # [C, C], a copy
    second = np.sort(features, axis=1)[:, -2]  # [C]
    np.fill_diagonal(features, second)
    return features
