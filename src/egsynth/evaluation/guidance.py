"""Whether the finest MSCA attends to the exemplar the way Sec. 3.2 intends (issue 13).

Two statistics of the finest scale's attention (scale 0, as in appendix B), over pairs of a target
label map c1 and an exemplar x2 with its parsed labels c̃2:

- `entropy`: the entropy of each spatial attention map α_k (Eq. 4) divided by log(H2·W2), the
  entropy of a uniform map, averaged over the K maps and the pairs. 1 means α_k spreads evenly over
  the exemplar (global average pooling, the `gap` ablation, in disguise); lower means it focuses.
- `label_match`: for the target pixels whose class is present in c̃2, the share of the attention
  mass arriving there (β over the K maps, Eq. 7, then α_k over the exemplar, Eq. 4) that lands on
  exemplar pixels of the same class, pooled over all such pixels of all pairs. It is the diagonal of
  the Fig. 10 transfer (`attention.TransferMatrix`) without the gate of Eq. 6: the gate scales what a
  map carries, not where it looks, so this measures where the attention goes.

`AttentionStatistics` accumulates both over batches (the `evaluate` stage, on the swap cases);
`attention_probe` computes them on one fixed batch of training pairs at each checkpoint of `train`.
Variants without MSCA (e.g. `gap`) have no α and β to measure.
"""

from __future__ import annotations

import math

import torch
from einops import einsum, reduce
from torch import Tensor

from egsynth.evaluation.attention import FINEST_SCALE
from egsynth.models.features import resize_labels
from egsynth.models.generator import Generator
from egsynth.models.msca import AttentionRecord, aggregate, distribute

ATTENTION_STATISTICS = ("entropy", "label_match")
"""The keys of `AttentionStatistics.summary`, in the order the training CSV has them."""


def normalized_entropy(alpha: Tensor) -> Tensor:
    """Entropy of each spatial map α [B, K, H2, W2] (each sums to 1) over log(H2·W2): [B, K] in [0, 1]."""
    positions = alpha.shape[-2] * alpha.shape[-1]
    assert positions > 1, f"a spatial map of {positions} position has no entropy to normalize"
    entropy = -reduce(torch.special.xlogy(alpha, alpha), "b k h w -> b k", "sum")  # [B, K], 0 log 0 = 0
    return entropy / math.log(positions)


def label_match_mass(record: AttentionRecord, exemplar_labels: Tensor, target_labels: Tensor) -> tuple[Tensor, Tensor]:
    """(mass on same-class exemplar pixels, all attention mass) summed over the counted target pixels, per pair [B].

    c̃2 [B, C, H2, W2] and c1 [B, C, H1, W1] one-hot at any size (resized, nearest, to α's and β's
    sizes, as `TransferMatrix` does); counted are the target pixels whose class occurs in c̃2 at α's
    size. Unlabeled exemplar pixels belong to no class: mass on them never matches.
    """
    alpha, beta = record.alpha.detach().float(), record.beta.detach().float()  # [B, K, H2, W2], [B, K, H1, W1]
    c2 = resize_labels(exemplar_labels.float(), alpha.shape[-2:])  # [B, C, H2, W2]
    c1 = resize_labels(target_labels.float(), beta.shape[-2:])  # [B, C, H1, W1]
    present = reduce(c2, "b c h w -> b c 1 1", "max")  # [B, C, 1, 1], 1 where the exemplar has the class
    counted = c1 * present  # [B, C, H1, W1], one-hot of the counted target pixels
    no_gate = alpha.new_ones(alpha.shape[:2])  # [B, K]
    arriving = distribute(aggregate(c2, alpha), no_gate, beta)  # [B, C, H1, W1]: exemplar class e at each pixel
    matched = einsum(arriving, counted, "b c h w, b c h w -> b")  # [B]
    mass = einsum(reduce(alpha, "b k h w -> b k", "sum"), beta, "b k, b k h w -> b h w")  # [B, H1, W1], 1 each
    total = einsum(mass, reduce(counted, "b c h w -> b h w", "sum"), "b h w, b h w -> b")  # [B]
    return matched, total


class AttentionStatistics:
    """`entropy` and `label_match` of the finest MSCA, accumulated over batches of pairs."""

    def __init__(self):
        self.entropy_sum = 0.0  # summed over every map α_k of every pair
        self.maps = 0
        self.matched = 0.0  # attention mass on same-class exemplar pixels, over the counted target pixels
        self.mass = 0.0  # all attention mass arriving at the counted target pixels

    def add(self, record: AttentionRecord, exemplar_labels: Tensor, target_labels: Tensor) -> None:
        """One batch: the finest scale's record, c̃2 and c1 one-hot [B, C, H, W] (see `label_match_mass`)."""
        if record.alpha is None or record.beta is None:
            raise ValueError("attention statistics need spatial and channel attention; this record has none")
        entropy = normalized_entropy(record.alpha.detach().float())  # [B, K]
        self.entropy_sum += float(entropy.sum())
        self.maps += entropy.numel()
        matched, total = label_match_mass(record, exemplar_labels, target_labels)
        self.matched += float(matched.sum())
        self.mass += float(total.sum())

    def summary(self) -> dict[str, float]:
        """{"entropy", "label_match"}; NaN where nothing was counted (no pair, or no shared class)."""
        return {
            "entropy": self.entropy_sum / self.maps if self.maps else math.nan,
            "label_match": self.matched / self.mass if self.mass > 0 else math.nan,
        }


@torch.no_grad()
def attention_probe(generator: Generator, batch: dict[str, Tensor], *, device: torch.device) -> dict[str, float]:
    """Both statistics of `generator` on one batch of `PairDataset` items ("target_labels", "exemplar",
    "exemplar_labels", labels one-hot), in eval mode (its mode is restored); {} without MSCA.

    Training logs it at every checkpoint on the same fixed pairs, so the curve shows the attention
    learning to focus (entropy falling) on the exemplar's matching classes (label_match rising).
    """
    if not generator.spec.msca:
        return {}
    was_training = generator.training
    generator.eval()
    c1, x2, c2 = (batch[key].to(device) for key in ("target_labels", "exemplar", "exemplar_labels"))
    record = generator(c1, x2, c2).attention[FINEST_SCALE]
    generator.train(was_training)
    statistics = AttentionStatistics()
    statistics.add(record, c2, c1)
    return statistics.summary()
