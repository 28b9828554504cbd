"""Feature alignment (Sec. 3.2, Eq. 4-8): Masked Spatial-Channel Attention and the alternatives.

- `MSCA`: spatial attention α over the exemplar (Eq. 4), spatial aggregation V = F_x2 α^T (Eq. 5),
  feature masking by a gate g from the label features (Eq. 6), channel attention β over the target
  (Eq. 7), channel aggregation F_x1 = Ṽ β (Eq. 8). Every product is [N, HW] x [HW, K] or
  [N, K] x [K, HW]: memory is linear in H*W, no HW x HW tensor is formed. `interpolate` mixes two
  exemplars' styles (Sec. 4, "Interpolation").
- `GlobalPooling`: the `gap` ablation, F_x1 = spatial mean of F_x2 everywhere.
- `LabelAttention`: the `no_att` ablation, α and β replaced by the one-hot label maps of exemplar and
  target (alignment only between regions of the same class), feature masking kept.
- `DenseAttention`: the `full_attention` variant, CoCosNet-style dense correspondence (an
  HW1 x HW2 softmax), for the cost/quality comparison.

All four share the contract `(f_x2, f_c2, f_c1, ...) -> (F_x1 [B, N, H1, W1], AttentionRecord)`;
exemplar (H2, W2) and target (H1, W1) may differ in size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import einsum, rearrange, reduce
from torch import Tensor, nn

# ---------------------------------------------------------------------------------------------
# helpers


@dataclass
class AttentionRecord:
    """What an alignment attended to at one scale; None where the alignment has no such piece."""

    alpha: Tensor | None  # [B, K, H2, W2] spatial attention (Eq. 4), sums to 1 over space
    gate: Tensor | None  # [B, K] feature masking (Eq. 6), in (0, 1)
    beta: Tensor | None  # [B, K, H1, W1] channel attention (Eq. 7), sums to 1 over K


def spatial_softmax(logits: Tensor) -> Tensor:
    """softmax_{2,3} of Eq. 4: each of the K maps [B, K, H, W] normalized over its H*W positions."""
    height = logits.shape[-2]
    flat = rearrange(logits, "b k h w -> b k (h w)")  # [B, K, H*W]
    return rearrange(flat.softmax(dim=-1), "b k (h w) -> b k h w", h=height)  # [B, K, H, W]


def aggregate(f_x2: Tensor, alpha: Tensor) -> Tensor:
    """Eq. 5: V = F_x2 α^T, the K features [B, N, K] pooled from F_x2 [B, N, H, W] by α [B, K, H, W]."""
    return einsum(f_x2, alpha, "b n h w, b k h w -> b n k")  # [B, N, K]


def distribute(v: Tensor, gate: Tensor, beta: Tensor) -> Tensor:
    """Eq. 6 and 8: F_x1 = (V ∘ g) β, from V [B, N, K], gate [B, K] and β [B, K, H1, W1] to [B, N, H1, W1]."""
    v_masked = v * rearrange(gate, "b k -> b 1 k")  # [B, N, K], Ṽ of Eq. 6
    return einsum(v_masked, beta, "b n k, b k h w -> b n h w")  # [B, N, H1, W1]


def _check_inputs(f_x2: Tensor, f_c2: Tensor, f_c1: Tensor, image_channels: int, label_channels: int) -> None:
    assert f_x2.dim() == f_c2.dim() == f_c1.dim() == 4, "expects [B, C, H, W] feature maps"
    assert f_x2.shape[0] == f_c2.shape[0] == f_c1.shape[0], "batch sizes differ"
    assert f_x2.shape[1] == image_channels, f"F_x2 has {f_x2.shape[1]} channels, expected N = {image_channels}"
    assert f_c2.shape[1] == f_c1.shape[1] == label_channels, (
        f"F_c2, F_c1 have {f_c2.shape[1]}, {f_c1.shape[1]} channels, expected M = {label_channels}"
    )
    assert f_x2.shape[-2:] == f_c2.shape[-2:], f"F_x2 {tuple(f_x2.shape)} and F_c2 {tuple(f_c2.shape)} differ in size"


def _gate_mlp(label_channels: int, hidden_channels: int, k: int) -> nn.Sequential:
    """mlp of Eq. 6: a 2-layer MLP and a sigmoid, from [gap(F_c1), gap(F_c2)] (2M) to K scores."""
    return nn.Sequential(
        nn.Linear(2 * label_channels, hidden_channels),
        nn.ReLU(),
        nn.Linear(hidden_channels, k),
        nn.Sigmoid(),
    )


def _gate_input(f_c1: Tensor, f_c2: Tensor) -> Tensor:
    pooled_1 = reduce(f_c1, "b m h w -> b m", "mean")  # [B, M], gap(F_c1)
    pooled_2 = reduce(f_c2, "b m h w -> b m", "mean")  # [B, M], gap(F_c2)
    return torch.cat([pooled_1, pooled_2], dim=1)  # [B, 2M]


# ---------------------------------------------------------------------------------------------
# classes


class MSCA(nn.Module):
    """Masked Spatial-Channel Attention at one scale (Sec. 3.2, Eq. 4-8).

    With K = 1 and a constant α it is global average pooling (Sec. 3.2, Remarks).

    With `num_classes` C > 0 (not in the paper), φ of Eq. 4 also reads the exemplar's one-hot labels c̃2
    and ψ of Eq. 7 the target's c1, beside F_c2 and F_c1: the 1x1 convs get a weight per class and map,
    so a map can single out one class without first learning to read it off the small label features.
    `label_init` > 0 draws those class weights once from N(0, label_init²) and gives φ and ψ the same
    draw: map k then attends the exemplar's class of highest preference w_kc among those present, and a
    target pixel of class c leans on the maps that prefer c, so attention starts label-selective
    instead of uniform (under Adam at lr 2e-4 a weight moves ~0.1 in a CPU training, too little to
    open the logit gaps of 5-8 that choosing one class among thousands of positions needs).
    `preferred_classes` makes the preferences one-hot instead: map k prefers the k-th listed class with weight
    `label_init`, every other weight 0. A listed class then owns a map, which attends that class alone where
    the exemplar shows it and prefers no class where it does not (about the exemplar's mean, as global pooling).
    """

    def __init__(
        self,
        image_channels: int,  # N: channels of F_x2 and F_x1
        label_channels: int,  # M: channels of F_c1 and F_c2
        k: int,  # K: number of attention maps
        *,
        hidden_channels: int | None = None,  # width of the gate MLP's hidden layer (None: M)
        num_classes: int = 0,  # C: one-hot label channels beside F_c in φ and ψ (0: the paper's inputs)
        label_init: float = 0.0,  # std of the tied class weights of φ and ψ (0: the default conv init)
        preferred_classes: Sequence[int] | None = None,  # one-hot instead: map k prefers the k-th, weight label_init
    ):
        super().__init__()
        assert num_classes >= 0 and label_init >= 0, "num_classes and label_init must be non-negative"
        assert label_init == 0 or num_classes > 0, "label_init needs the one-hot label inputs (num_classes > 0)"
        self.image_channels = image_channels
        self.label_channels = label_channels
        self.num_classes = num_classes
        self.k = k
        hidden_channels = label_channels if hidden_channels is None else hidden_channels
        self.spatial = nn.Conv2d(image_channels + label_channels + num_classes, k, kernel_size=1)  # φ of Eq. 4
        self.channel = nn.Conv2d(label_channels + num_classes, k, kernel_size=1)  # ψ of Eq. 7
        self.gate = _gate_mlp(label_channels, hidden_channels, k)  # mlp of Eq. 6
        assert preferred_classes is None or (label_init > 0 and len(preferred_classes) <= k), (
            "one-hot preferences need a weight (label_init > 0) and a map per preferred class"
        )
        if label_init > 0:
            if preferred_classes is None:
                preference = torch.randn(k, num_classes) * label_init  # [K, C], w_kc
            else:
                preference = torch.zeros(k, num_classes)  # [K, C], w_kc one-hot per listed class
                preference[range(len(preferred_classes)), list(preferred_classes)] = label_init
            with torch.no_grad():
                self.spatial.weight[:, -num_classes:, 0, 0] = preference
                self.channel.weight[:, -num_classes:, 0, 0] = preference

    def _with_labels(self, features: Tensor, labels: Tensor | None, what: str) -> Tensor:
        """[F, c] when the convs read one-hot labels, else F (the labels, if given, unused)."""
        if not self.num_classes:
            return features
        assert labels is not None, f"this MSCA reads the one-hot labels {what} beside the label features"
        assert labels.shape[1] == self.num_classes and labels.shape[-2:] == features.shape[-2:], (
            f"{what} {tuple(labels.shape)} is not one-hot over {self.num_classes} classes at {tuple(features.shape)}"
        )
        return torch.cat([features, labels.to(features.dtype)], dim=1)

    # -- the pieces, exposed so style manipulation can recompose them --

    def spatial_logits(self, f_x2: Tensor, f_c2: Tensor, c2: Tensor | None = None) -> Tensor:
        """φ * [F_x2, F_c2] of Eq. 4 (with c̃2 appended when the module reads labels): [B, K, H2, W2]."""
        return self.spatial(torch.cat([f_x2, self._with_labels(f_c2, c2, "c̃2")], dim=1))  # [B, K, H2, W2]

    def gate_scores(self, f_c1: Tensor, f_c2: Tensor) -> Tensor:
        """Eq. 6: mlp([gap(F_c1), gap(F_c2)]) -> gate [B, K] in (0, 1)."""
        return self.gate(_gate_input(f_c1, f_c2))  # [B, K]

    def channel_attention(self, f_c1: Tensor, c1: Tensor | None = None) -> Tensor:
        """Eq. 7: β = softmax over K of ψ * F_c1 (with c1 appended when the module reads labels), [B, K, H1, W1]."""
        return self.channel(self._with_labels(f_c1, c1, "c1")).softmax(dim=1)  # [B, K, H1, W1]

    def aggregate(self, f_x2: Tensor, alpha: Tensor) -> Tensor:
        """Eq. 5: V [B, N, K]."""
        return aggregate(f_x2, alpha)

    def distribute(self, v: Tensor, gate: Tensor, beta: Tensor) -> Tensor:
        """Eq. 6 and 8: F_x1 [B, N, H1, W1]."""
        return distribute(v, gate, beta)

    # -- the module --

    def forward(
        self,
        f_x2: Tensor,
        f_c2: Tensor,
        f_c1: Tensor,
        masking: bool = True,
        *,
        c2: Tensor | None = None,
        c1: Tensor | None = None,
    ) -> tuple[Tensor, AttentionRecord]:
        """F_x2 [B, N, H2, W2], F_c2 [B, M, H2, W2], F_c1 [B, M, H1, W1] -> F_x1 [B, N, H1, W1].

        `masking=False` is the `no_fm` ablation: the gate of Eq. 6 is exactly 1. c̃2 [B, C, H2, W2] and
        c1 [B, C, H1, W1] are the one-hot labels at this scale, needed when `num_classes` > 0 (else unused).
        """
        _check_inputs(f_x2, f_c2, f_c1, self.image_channels, self.label_channels)
        alpha = spatial_softmax(self.spatial_logits(f_x2, f_c2, c2))  # [B, K, H2, W2], Eq. 4
        v = self.aggregate(f_x2, alpha)  # [B, N, K], Eq. 5
        gate = self.gate_scores(f_c1, f_c2) if masking else v.new_ones(v.shape[0], self.k)  # [B, K], Eq. 6
        beta = self.channel_attention(f_c1, c1)  # [B, K, H1, W1], Eq. 7
        f_x1 = self.distribute(v, gate, beta)  # [B, N, H1, W1], Eq. 6 and 8
        return f_x1, AttentionRecord(alpha=alpha, gate=gate, beta=beta)

    def interpolate(
        self,
        f_x2: Tensor,
        f_c2: Tensor,
        f_x3: Tensor,
        f_c3: Tensor,
        f_c1: Tensor,
        t: float,
        masking: bool = True,
        *,
        c2: Tensor | None = None,
        c3: Tensor | None = None,
        c1: Tensor | None = None,
    ) -> tuple[Tensor, AttentionRecord]:
        """Style interpolation between exemplars 2 (t = 1) and 3 (t = 0) (Sec. 4, "Interpolation").

        The spatial logits of scene 2 are offset by log t and those of scene 3 by log(1 - t); both
        scenes' features and logits are put side by side (flattened to H*W and concatenated, so the
        exemplars may differ in size) under one softmax; the gates are interpolated, t g2 + (1 - t) g3;
        channel attention and aggregation are unchanged. The logits are each scene's log α (its logits
        minus their log-sum-exp, the same attention alone), so the joint softmax gives scene 2 exactly
        the share t of every attention map whatever the scenes' sizes: V = t V2 + (1 - t) V3. With raw
        logits the share would also depend on each scene's partition function (e.g. its pixel count).
        t = 1 equals `forward` on scene 2, t = 0 on scene 3 (log 0 = -inf gives a zero share, no NaN).

        Returns F_x1 [B, N, H1, W1] and a record with the mixed gate and β (alpha None: it spans two scenes).
        """
        if not 0.0 <= t <= 1.0:
            raise ValueError(f"interpolation factor t must lie in [0, 1], got {t}")
        _check_inputs(f_x2, f_c2, f_c1, self.image_channels, self.label_channels)
        _check_inputs(f_x3, f_c3, f_c1, self.image_channels, self.label_channels)
        log_t = math.log(t) if t > 0 else -math.inf
        log_1mt = math.log1p(-t) if t < 1 else -math.inf
        logits_2 = rearrange(self.spatial_logits(f_x2, f_c2, c2), "b k h w -> b k (h w)")  # [B, K, H2*W2]
        logits_3 = rearrange(self.spatial_logits(f_x3, f_c3, c3), "b k h w -> b k (h w)")  # [B, K, H3*W3]
        logits = torch.cat([logits_2.log_softmax(dim=-1) + log_t, logits_3.log_softmax(dim=-1) + log_1mt], dim=-1)
        alpha = logits.softmax(dim=-1)  # [B, K, H2*W2 + H3*W3], one softmax over both scenes
        values = torch.cat(
            [rearrange(f_x2, "b n h w -> b n (h w)"), rearrange(f_x3, "b n h w -> b n (h w)")], dim=-1
        )  # [B, N, H2*W2 + H3*W3]
        v = einsum(values, alpha, "b n s, b k s -> b n k")  # [B, N, K], Eq. 5 over both scenes
        if masking:
            gate = t * self.gate_scores(f_c1, f_c2) + (1 - t) * self.gate_scores(f_c1, f_c3)  # [B, K]
        else:
            gate = v.new_ones(v.shape[0], self.k)  # [B, K]
        beta = self.channel_attention(f_c1, c1)  # [B, K, H1, W1]
        f_x1 = self.distribute(v, gate, beta)  # [B, N, H1, W1]
        return f_x1, AttentionRecord(alpha=None, gate=gate, beta=beta)


class GlobalPooling(nn.Module):
    """The `gap` ablation (Sec. 4, "Ablation Study"): F_x1 = spatial mean of F_x2 at every target location."""

    def forward(self, f_x2: Tensor, f_c2: Tensor, f_c1: Tensor, masking: bool = True) -> tuple[Tensor, AttentionRecord]:
        """F_x2 [B, N, H2, W2] -> F_x1 [B, N, H1, W1] (F_c2 unused, `masking` ignored: there is no gate)."""
        assert f_x2.dim() == f_c1.dim() == 4 and f_x2.shape[0] == f_c1.shape[0], "expects [B, C, H, W] maps"
        height, width = f_c1.shape[-2:]
        mean = reduce(f_x2, "b n h w -> b n 1 1", "mean")  # [B, N, 1, 1]
        f_x1 = mean.expand(-1, -1, height, width).contiguous()  # [B, N, H1, W1]
        return f_x1, AttentionRecord(alpha=None, gate=None, beta=None)


class LabelAttention(nn.Module):
    """The `no_att` ablation (Sec. 4, "Ablation Study"): α and β are the one-hot label maps.

    K = C: α_k is the exemplar's class-k mask normalized over space (zero for a class absent from the
    exemplar), so V_k is the mean exemplar feature of class k; β is the target's one-hot map, so a
    target pixel of class k receives V_k (gated): alignment only between regions of the same label.
    A target class absent from the exemplar gets zero features. Feature masking (Eq. 6) is kept.
    """

    def __init__(
        self,
        image_channels: int,  # N: channels of F_x2 and F_x1
        label_channels: int,  # M: channels of F_c1 and F_c2 (the gate's input)
        num_classes: int,  # C = K: one attention map per class
        *,
        hidden_channels: int | None = None,  # width of the gate MLP's hidden layer (None: M)
    ):
        super().__init__()
        self.image_channels = image_channels
        self.label_channels = label_channels
        self.num_classes = num_classes
        hidden_channels = label_channels if hidden_channels is None else hidden_channels
        self.gate = _gate_mlp(label_channels, hidden_channels, num_classes)  # mlp of Eq. 6, K = C

    def forward(
        self, f_x2: Tensor, f_c2: Tensor, f_c1: Tensor, c2: Tensor, c1: Tensor, masking: bool = True
    ) -> tuple[Tensor, AttentionRecord]:
        """As MSCA, with c̃2 [B, C, H2, W2] and c1 [B, C, H1, W1] one-hot at this scale's resolutions."""
        _check_inputs(f_x2, f_c2, f_c1, self.image_channels, self.label_channels)
        assert c2.shape[1] == c1.shape[1] == self.num_classes, f"expects {self.num_classes} label channels"
        assert c2.shape[-2:] == f_x2.shape[-2:], f"c̃2 {tuple(c2.shape)} is not at F_x2's size {tuple(f_x2.shape)}"
        assert c1.shape[-2:] == f_c1.shape[-2:], f"c1 {tuple(c1.shape)} is not at F_c1's size {tuple(f_c1.shape)}"
        mass = reduce(c2, "b k h w -> b k 1 1", "sum")  # [B, C, 1, 1], pixels per class
        alpha = c2 / mass.clamp_min(torch.finfo(c2.dtype).eps)  # [B, C, H2, W2], 0 for absent classes
        v = aggregate(f_x2, alpha)  # [B, N, C]
        gate = self.gate(_gate_input(f_c1, f_c2)) if masking else v.new_ones(v.shape[0], self.num_classes)  # [B, C]
        beta = c1  # [B, C, H1, W1]
        f_x1 = distribute(v, gate, beta)  # [B, N, H1, W1]
        return f_x1, AttentionRecord(alpha=alpha, gate=gate, beta=beta)


class DenseAttention(nn.Module):
    """The `full_attention` variant: CoCosNet-style dense cross-attention between target and exemplar.

    Queries from F_c1 and keys from [F_x2, F_c2] (1x1 convolutions to a shared width), centred and
    L2-normalized per position; correspondence softmax over exemplar positions of the cosine
    similarities divided by a temperature; F_x1 = F_x2 warped by that HW1 x HW2 correspondence.
    Memory and time are quadratic in H*W: maps whose side exceeds `max_side` are average-pooled to at
    most `max_side` first and the result upsampled bilinearly to the target size.
    """

    def __init__(
        self,
        image_channels: int,  # N: channels of F_x2 and F_x1
        label_channels: int,  # M: channels of F_c1 and F_c2
        *,
        key_channels: int = 64,  # shared width of queries and keys
        max_side: int | None,  # largest side of the correspondence (None: full resolution, truly dense)
        temperature: float = 0.01,  # softmax temperature (CoCosNet: 0.01)
    ):
        super().__init__()
        assert max_side is None or max_side >= 1, "max_side must be positive or None"
        self.image_channels = image_channels
        self.label_channels = label_channels
        self.max_side = max_side
        self.temperature = temperature
        self.query = nn.Conv2d(label_channels, key_channels, kernel_size=1)
        self.key = nn.Conv2d(image_channels + label_channels, key_channels, kernel_size=1)

    def _pool(self, x: Tensor) -> Tensor:
        """Average-pool [B, C, H, W] by one integer-ceil factor so that both sides are at most max_side."""
        height, width = x.shape[-2:]
        if self.max_side is None or max(height, width) <= self.max_side:
            return x
        factor = math.ceil(max(height, width) / self.max_side)
        return F.adaptive_avg_pool2d(x, (math.ceil(height / factor), math.ceil(width / factor)))

    @staticmethod
    def _normalize(x: Tensor) -> Tensor:
        x = x - x.mean(dim=1, keepdim=True)  # [B, D, S], centred per position
        return x / x.norm(dim=1, keepdim=True).clamp_min(1e-6)  # [B, D, S], unit length per position

    def forward(self, f_x2: Tensor, f_c2: Tensor, f_c1: Tensor, masking: bool = True) -> tuple[Tensor, AttentionRecord]:
        """As MSCA (`masking` ignored: no gate); F_x1 [B, N, H1, W1]."""
        _check_inputs(f_x2, f_c2, f_c1, self.image_channels, self.label_channels)
        height, width = f_c1.shape[-2:]
        f_c1, f_x2, f_c2 = self._pool(f_c1), self._pool(f_x2), self._pool(f_c2)  # 1x1 convs commute with pooling
        pooled_height = f_c1.shape[-2]
        query = rearrange(self.query(f_c1), "b d h w -> b d (h w)")  # [B, D, h1*w1]
        key = rearrange(self.key(torch.cat([f_x2, f_c2], dim=1)), "b d h w -> b d (h w)")  # [B, D, h2*w2]
        # one expression, so that only the softmax's output outlives it: [B, h1*w1, h2*w2]
        correspondence = (
            einsum(self._normalize(query), self._normalize(key), "b d i, b d j -> b i j") / self.temperature
        ).softmax(dim=-1)
        values = rearrange(f_x2, "b n h w -> b n (h w)")  # [B, N, h2*w2]
        warped = einsum(correspondence, values, "b i j, b n j -> b n i")  # [B, N, h1*w1]
        f_x1 = rearrange(warped, "b n (h w) -> b n h w", h=pooled_height)  # [B, N, h1, w1]
        if f_x1.shape[-2:] != (height, width):
            f_x1 = F.interpolate(f_x1, size=(height, width), mode="bilinear", align_corners=False)  # [B, N, H1, W1]
        return f_x1, AttentionRecord(alpha=None, gate=None, beta=None)
