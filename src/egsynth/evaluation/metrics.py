"""Image metrics of Table 1 (Sec. 4): PSNR, LPIPS [51] and the style loss of [9], plus SSIM; FID [14] is in
`evaluation.fid` on the feature networks defined here.

Images are [B, 3, H, W] floats in [-1, 1]. Per-image metrics return [B].

The paper's perceptual metrics need pretrained networks that are never downloaded here (docs/design.md,
"Pretrained networks, offline"):
- LPIPS `vgg16`: the "linearly calibrated VGG" of the paper, i.e. the `lpips` package's v0.1 linear
  layers (shipped in its wheel) on torchvision's ImageNet VGG-16 from the torch hub cache;
- FID `inception`: torch-fidelity's Inception-v3 (the TF FID network) from the torch hub cache.
A missing file raises `BackboneWeightsMissing` naming it and its URL. The stand-ins `parser` (the
trained label parser's backbone) and `backbone` (the generator's VGG-19, `random` or `imagenet`)
apply the same formulas to other features; every metric carries a `label` naming its backbone, and
a stand-in's label starts with "stand-in:".
"""

from __future__ import annotations

import warnings
from pathlib import Path
from urllib.parse import urlparse

import lpips
import torch
import torch.nn.functional as F
from einops import einsum, rearrange, reduce
from torch import Tensor, nn
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure
from torchvision.models import VGG16_Weights

from egsynth.io import torch_load_problem
from egsynth.losses import style_loss
from egsynth.models.features import (
    BackboneWeightsInvalid,
    BackboneWeightsMissing,
    VGGFeatures,
    backbone_label,
)
from egsynth.parsing.parser import Parser, ParserError, load_parser

# ---------------------------------------------------------------------------------------------
# constants

SSIM_KERNEL = 11  # Wang et al.'s Gaussian window: 11 x 11, sigma 1.5
SSIM_SIGMA = 1.5
LPIPS_EPS = 1e-10  # lpips.normalize_tensor's epsilon, so the formula matches the package bit for bit
VGG16_URL = VGG16_Weights.IMAGENET1K_V1.url  # the trunk LPIPS v0.1 was calibrated on
LPIPS_VGG16_LABEL = "vgg16-imagenet (LPIPS v0.1 linear weights)"
LPIPS_NETS = ("vgg16", "parser", "backbone")

PARSER_TAPS = {
    "lraspp_mobilenet_v3_large": ("1", "3", "4", "16"),  # /2, /4, LRASPP's 'low' /8, 'high' /16
    "deeplabv3_mobilenet_v3_large": ("1", "3", "4", "16"),  # the same MobileNetV3 blocks; '16' is 'out'
    "deeplabv3_resnet50": ("relu", "layer1", "layer2", "layer3", "layer4"),  # 'layer4' is 'out'
    "deeplabv2_resnet101": ("layer1", "layer2", "layer3", "layer4", "layer5"),  # stem /4, /4, /8, /8, /8
}
"""Blocks of each parser architecture's `backbone` whose outputs are the stand-in's feature maps, shallow to deep."""

# ---------------------------------------------------------------------------------------------
# helpers


def to_unit(image: Tensor) -> Tensor:
    """[-1, 1] -> [0, 1], clipped as when the image is saved."""
    return ((image + 1) / 2).clamp(0, 1)


def hub_checkpoint(url: str) -> Path:
    """Where torch.hub keeps the file of `url`: <torch.hub.get_dir()>/checkpoints/<url's file name>."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name


def require_weights(path: Path, *, url: str, what: str) -> Path:
    """`path` if it is a file, else `BackboneWeightsMissing` naming it and its URL (nothing is downloaded)."""
    if not path.is_file():
        raise BackboneWeightsMissing(
            f"{what} weights not found at {path} (nothing is downloaded): download {url} to that path, "
            f"or choose a stand-in metric network (`parser` or `backbone`)",
            path=path,
        )
    return path


# ---------------------------------------------------------------------------------------------
# pixel metrics


def psnr(fake: Tensor, real: Tensor) -> Tensor:
    """PSNR in dB of each image pair on [0, 1] (data range 1) -> [B]; inf for identical images."""
    assert fake.shape == real.shape and fake.dim() == 4, f"psnr: {tuple(fake.shape)} vs {tuple(real.shape)}"
    return peak_signal_noise_ratio(to_unit(fake), to_unit(real), data_range=1.0, reduction="none", dim=(1, 2, 3))


def ssim(fake: Tensor, real: Tensor) -> Tensor:
    """SSIM of each image pair on [0, 1]: Gaussian 11 x 11 window, sigma 1.5, mean over channels -> [B].

    The SSIM map is averaged without its 5-pixel border, whose windows would reach outside the image:
    Wang et al.'s reference and skimage do so, torchmetrics' own mean keeps the reflection-padded
    border (2e-3 lower on 32-pixel noise images). Images need H, W > 10.
    """
    assert fake.shape == real.shape and fake.dim() == 4, f"ssim: {tuple(fake.shape)} vs {tuple(real.shape)}"
    assert min(fake.shape[-2:]) > SSIM_KERNEL - 1, f"ssim needs images larger than 10 pixels, got {tuple(fake.shape)}"
    _, ssim_map = structural_similarity_index_measure(
        to_unit(fake),
        to_unit(real),
        gaussian_kernel=True,
        sigma=SSIM_SIGMA,
        kernel_size=SSIM_KERNEL,
        data_range=1.0,
        reduction="none",
        return_full_image=True,
    )  # [B, 3, H, W]
    border = SSIM_KERNEL // 2
    return reduce(ssim_map[..., border:-border, border:-border], "b c h w -> b", "mean")  # [B]


# ---------------------------------------------------------------------------------------------
# feature networks


class FeatureNet(nn.Module):
    """A frozen network: images [B, 3, H, W] in [-1, 1] -> feature maps [B, C_l, H_l, W_l], shallow to deep.

    `label` names the backbone and says whether it stands in for the paper's network.
    """

    def __init__(self, *, label: str):
        super().__init__()
        self.label = label

    def freeze(self) -> FeatureNet:
        self.requires_grad_(False)
        return self.train(False)

    def train(self, mode: bool = True) -> FeatureNet:
        """Always eval: batch norm and dropout keep their inference behaviour (`mode` is ignored)."""
        return super().train(False)


class LPIPSTrunk(FeatureNet):
    """The trunk of an `lpips.LPIPS` model: its input scaling, then relu1_2 .. relu5_3 of VGG-16."""

    def __init__(self, *, model: lpips.LPIPS, label: str):
        super().__init__(label=label)
        self.scaling = model.scaling_layer
        self.trunk = model.net
        self.freeze()

    def forward(self, image: Tensor) -> list[Tensor]:
        return list(self.trunk(self.scaling(image)))


class ParserFeatures(FeatureNet):
    """Stand-in: the trained label parser's backbone at the blocks of PARSER_TAPS.

    Images are resized (antialiased bilinear) to the parser's `image_size`, as the parser sees them.
    """

    def __init__(self, *, parser: Parser):
        assert parser.model is not None and parser.architecture in PARSER_TAPS, f"no parser network: {parser}"
        label = f"stand-in: {parser.label} parser features"
        if parser.architecture not in parser.label:
            label += f" ({parser.architecture})"
        super().__init__(label=label)
        self.backbone = parser.model.backbone
        self.taps = PARSER_TAPS[parser.architecture]
        self.image_size = parser.image_size
        self.freeze()

    def forward(self, image: Tensor) -> list[Tensor]:
        assert image.dim() == 4 and image.shape[1] == 3, f"expects images [B, 3, H, W], got {tuple(image.shape)}"
        assert image.is_floating_point(), f"expects float images in [-1, 1], got {image.dtype}"
        h = image
        if tuple(h.shape[-2:]) != (self.image_size, self.image_size):
            size = (self.image_size, self.image_size)
            h = F.interpolate(h, size=size, mode="bilinear", antialias=True, align_corners=False)  # [B, 3, S, S]
        outputs = []
        for name, block in self.backbone.items():
            h = block(h)
            if name in self.taps:
                outputs.append(h)
            if name == self.taps[-1]:
                return outputs
        raise AssertionError(f"parser backbone ends before block {self.taps[-1]!r}")


class VGG19Features(FeatureNet):
    """Stand-in: the generator's VGG-19 (`model.backbone`) at relu1_1 .. relu5_1."""

    def __init__(self, *, backbone: str, seed: int):
        super().__init__(label=f"stand-in: {backbone_label(backbone)}")
        self.vgg = VGGFeatures(backbone=backbone, seed=seed, num_scales=0)
        self.freeze()

    def forward(self, image: Tensor) -> list[Tensor]:
        return self.vgg.perceptual_layers(image)


def stand_in_features(net: str, *, parser_path: Path | None, backbone: str, seed: int) -> FeatureNet:
    """The stand-in network `parser` (loaded from `parser_path`, on CPU) or `backbone` (VGG-19 `backbone`)."""
    if net == "backbone":
        return VGG19Features(backbone=backbone, seed=seed)
    if parser_path is None:
        raise ValueError("the `parser` metric network needs the path of a saved parser (parser_path)")
    parser = load_parser(parser_path, device="cpu")
    if parser.model is None:
        raise ParserError(
            f"{parser_path}: the {parser.label} parser has no network to take features from; "
            f"choose the `backbone` metric network or a trained parser"
        )
    return ParserFeatures(parser=parser)


# ---------------------------------------------------------------------------------------------
# LPIPS


def lpips_distance(features_fake: list[Tensor], features_real: list[Tensor], weights: list[Tensor] | None) -> Tensor:
    """LPIPS's formula [51]: d = sum_l mean_hw sum_c w_lc (ŷ_lhwc - ŷ0_lhwc)^2 -> [B].

    ŷ, ŷ0: each layer's features [B, C_l, H_l, W_l] unit-normalized over channels; w_l [C_l]: the
    calibrated linear weights, or all ones when `weights` is None (LPIPS's uncalibrated baseline).
    """
    assert len(features_fake) == len(features_real) >= 1, "lpips_distance needs as many fake as real layers"
    assert weights is None or len(weights) == len(features_fake), "one weight vector per layer"
    total = features_fake[0].new_zeros(features_fake[0].shape[0])  # [B]
    for layer, (f, r) in enumerate(zip(features_fake, features_real, strict=True)):
        f = f / (f.square().sum(dim=1, keepdim=True).sqrt() + LPIPS_EPS)  # [B, C, H, W]
        r = r / (r.square().sum(dim=1, keepdim=True).sqrt() + LPIPS_EPS)  # [B, C, H, W]
        squared = (f - r).square()  # [B, C, H, W]
        if weights is None:
            per_pixel = squared.sum(dim=1)  # [B, H, W]
        else:
            per_pixel = einsum(squared, weights[layer], "b c h w, c -> b h w")  # [B, H, W]
        total = total + reduce(per_pixel, "b h w -> b", "mean")  # [B]
    return total


def lpips_linear_weights(model: lpips.LPIPS) -> list[Tensor]:
    """The calibrated per-channel weights w_l [C_l] of an `lpips.LPIPS` model (its 1x1 convolutions)."""
    return [rearrange(lin.model[-1].weight.detach(), "1 c 1 1 -> c") for lin in model.lins]


class LPIPSMetric(nn.Module):
    """LPIPS [51] of image pairs with a FeatureNet and optional calibrated weights; `label` names the backbone."""

    def __init__(
        self,
        *,
        features: FeatureNet,  # the frozen network whose layers are compared
        weights: list[Tensor] | None,  # w_l [C_l] per layer; None: uniform (all ones)
    ):
        super().__init__()
        self.features = features
        self.label = features.label
        frozen = None if weights is None else [nn.Parameter(w.detach().clone(), requires_grad=False) for w in weights]
        self.weights = None if frozen is None else nn.ParameterList(frozen)

    @torch.no_grad()
    def forward(self, fake: Tensor, real: Tensor) -> Tensor:
        """Images [B, 3, H, W] in [-1, 1] -> LPIPS distance [B] (0 for identical images)."""
        assert fake.shape == real.shape, f"lpips: {tuple(fake.shape)} vs {tuple(real.shape)}"
        weights = None if self.weights is None else list(self.weights)
        return lpips_distance(self.features(fake), self.features(real), weights)


def _load_vgg16_trunk(model: lpips.LPIPS, path: Path) -> None:
    """torchvision's VGG-16 file (keys `features.<index>.*`) into the LPIPS slices (keys `slice<k>.<index>.*`)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # any unreadable file gets the same one-line message
        problem = torch_load_problem(error)
        raise BackboneWeightsInvalid(f"VGG-16 weights file {path} cannot be read: {problem}") from None
    wanted = {name: f"features.{name.split('.', 1)[1]}" for name in model.net.state_dict()}
    missing = [key for key in wanted.values() if key not in state]
    if missing:
        raise BackboneWeightsInvalid(f"VGG-16 weights file {path} lacks {len(missing)} tensors, like {missing[0]}")
    model.net.load_state_dict({name: state[key] for name, key in wanted.items()}, strict=True)


def lpips_vgg16() -> LPIPSMetric:
    """The paper's LPIPS: v0.1 linear weights on torchvision's ImageNet VGG-16 from the torch hub cache."""
    path = require_weights(hub_checkpoint(VGG16_URL), url=VGG16_URL, what="VGG-16 ImageNet (LPIPS trunk)")
    with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):
        warnings.filterwarnings("ignore", category=UserWarning, module="torchvision")  # lpips's `pretrained=` call
        model = lpips.LPIPS(net="vgg", pnet_rand=True, pretrained=True, verbose=False)
    _load_vgg16_trunk(model, path)
    return LPIPSMetric(features=LPIPSTrunk(model=model, label=LPIPS_VGG16_LABEL), weights=lpips_linear_weights(model))


def lpips_metric(net: str, *, parser_path: Path | None, backbone: str, seed: int) -> LPIPSMetric:
    """LPIPS with `vgg16` (the paper's), or a stand-in on `parser` or `backbone` features with uniform weights.

    Args:
        net: vgg16 | parser | backbone.
        parser_path: a parser saved by `save_parser` (for `parser`; the oracle has no network).
        backbone: the generator's VGG-19 backbone, imagenet | random | state-dict path (for `backbone`).
        seed: seed of a `random` backbone.
    Raises:
        BackboneWeightsMissing: a pretrained file is absent (named in the message, with its URL).
        ParserError: the parser file is unusable or holds the oracle.
    """
    if net not in LPIPS_NETS:
        raise ValueError(f"unknown LPIPS network {net!r} (expected one of: {', '.join(LPIPS_NETS)})")
    if net == "vgg16":
        return lpips_vgg16()
    features = stand_in_features(net, parser_path=parser_path, backbone=backbone, seed=seed)
    return LPIPSMetric(features=features, weights=None)


# ---------------------------------------------------------------------------------------------
# style loss


def style_label(vgg: VGGFeatures) -> str:
    """The style metric's label: the VGG-19 backbone, a stand-in when random (Gatys et al. use ImageNet's)."""
    return f"stand-in: {vgg.backbone}" if vgg.backbone == backbone_label("random") else vgg.backbone


@torch.no_grad()
def style_distance(fake: Tensor, real: Tensor, vgg: VGGFeatures) -> Tensor:
    """L_style of Table 1 per image pair: `losses.style_loss` on relu1_1 .. relu5_1 Gram matrices -> [B]."""
    assert fake.shape == real.shape, f"style_distance: {tuple(fake.shape)} vs {tuple(real.shape)}"
    return style_loss(vgg.perceptual_layers(fake), vgg.perceptual_layers(real), per_image=True)
