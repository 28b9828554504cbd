"""FID [14] of Table 1 (Sec. 4): a set statistic between synthesized and real images.

`inception` is the paper's network, torch-fidelity's Inception-v3 read from the torch hub cache (never
downloaded; a missing file raises `BackboneWeightsMissing` naming it and its URL); the stand-ins pool
the `parser` or `backbone` feature networks of `evaluation.metrics`, with the same formula.
"""

from __future__ import annotations

from pathlib import Path

import torch
from einops import reduce
from torch import Tensor, nn
from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3
from torchmetrics.image.fid import FrechetInceptionDistance

from egsynth.evaluation.metrics import FeatureNet, hub_checkpoint, require_weights, stand_in_features, to_unit

INCEPTION_LABEL = "inception-v3 (torch-fidelity TF-FID weights)"
INCEPTION_FEATURES = 2048  # pool3, the standard FID layer
FID_NETS = ("inception", "parser", "backbone")


class PooledFeatures(nn.Module):
    """Images [N, 3, H, W] in [-1, 1] -> [N, D], the global average of a FeatureNet's deepest map (cf. pool3)."""

    def __init__(self, *, net: FeatureNet):
        super().__init__()
        self.net = net
        with torch.no_grad():
            probe = net(torch.zeros(1, 3, 64, 64))[-1]  # [1, D, h, w]
        self.num_features = probe.shape[1]  # read by torchmetrics instead of probing with uint8 images

    def forward(self, images: Tensor) -> Tensor:
        return reduce(self.net(images)[-1], "n d h w -> n d", "mean")  # [N, D]


class FIDMetric(nn.Module):
    """FID [14] between the fake and real image sets seen by `update`; `label` names the feature network.

    FID needs at least 2 images per set (`compute` raises otherwise). With fewer images than feature
    dimensions the covariances are singular and FID is biased upward, so compare FIDs only at equal
    sample counts (`num_samples`) and feature network.
    """

    def __init__(
        self,
        *,
        fid: FrechetInceptionDistance,  # Inception (uint8 inputs) or a custom module taking [-1, 1] floats
        label: str,
    ):
        super().__init__()
        self.fid = fid
        self.label = label
        self.quantize = not fid.used_custom_model  # torch-fidelity's Inception reads uint8 [0, 255]

    def _inputs(self, images: Tensor) -> Tensor:
        assert images.dim() == 4 and images.shape[1] == 3, f"expects images [N, 3, H, W], got {tuple(images.shape)}"
        if self.quantize:
            return (to_unit(images) * 255).round().to(torch.uint8)  # [N, 3, H, W] uint8
        return images  # torchmetrics hands a custom module the tensor unchanged

    def update(self, fake: Tensor, real: Tensor) -> None:
        """Add images [N, 3, H, W] in [-1, 1] to the fake and real sets."""
        self.fid.update(self._inputs(fake), real=False)
        self.fid.update(self._inputs(real), real=True)

    @property
    def num_samples(self) -> tuple[int, int]:
        """(fake, real) images seen since the last reset."""
        return int(self.fid.fake_features_num_samples), int(self.fid.real_features_num_samples)

    def compute(self) -> float:
        fake, real = self.num_samples
        if min(fake, real) < 2:
            raise ValueError(f"FID needs at least 2 fake and 2 real images for the covariances, got {fake} and {real}")
        return float(self.fid.compute())

    def reset(self) -> None:
        self.fid.reset()


def fid_metric(net: str, *, parser_path: Path | None, backbone: str, seed: int) -> FIDMetric:
    """FID with `inception` (the paper's), or a stand-in on pooled `parser` 'high' or `backbone` relu5_1 features.

    Arguments and errors as `lpips_metric`; `inception` reads torch-fidelity's file from the torch hub cache.
    """
    if net not in FID_NETS:
        raise ValueError(f"unknown FID network {net!r} (expected one of: {', '.join(FID_NETS)})")
    if net == "inception":
        path = require_weights(hub_checkpoint(URL_INCEPTION_V3), url=URL_INCEPTION_V3, what="Inception-v3 (FID)")
        fid = FrechetInceptionDistance(feature=INCEPTION_FEATURES, feature_extractor_weights_path=str(path))
        return FIDMetric(fid=fid, label=INCEPTION_LABEL)
    features = stand_in_features(net, parser_path=parser_path, backbone=backbone, seed=seed)
    return FIDMetric(fid=FrechetInceptionDistance(feature=PooledFeatures(net=features)), label=features.label)
