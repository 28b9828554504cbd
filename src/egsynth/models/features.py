"""Feature extraction (Sec. 3.1, Eq. 1-3): multi-scale VGG-19 image features and label-map features.

- `load_vgg19`: the VGG-19 `features` network with weights from torchvision's ImageNet file in the
  torch hub cache, from a state-dict file, or a seeded random initialization (docs/design.md,
  "Pretrained networks, offline": never a download, never a silent fallback).
- `VGGFeatures`: the frozen extractor F_vgg^(i) of Eq. 1 (relu1_2, relu2_2, relu3_4, relu4_4,
  relu5_4 for scales 0..4) and the relu_x_1 layers of SPADE's perceptual loss.
- `ImageEncoder`: Eq. 1, F_x^(i) = W_x^(i) * F_vgg^(i)(x) with a 1x1 convolution per scale.
- `LabelEncoder`: Eq. 2-3, coarse-to-fine label features; one module encodes both c1 and c̃2.

Scale i = 0..L runs finest first; scale i has resolution (H // 2**i, W // 2**i), the floor that
VGG's 2x2 max-pooling gives for odd sizes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn
from torchvision.models import VGG19_Weights
from torchvision.models.vgg import cfgs, make_layers

from egsynth.io import torch_load_problem

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# constants

SCALE_LAYERS = (3, 8, 17, 26, 35)
"""Indices in VGG-19 `features` of relu1_2, relu2_2, relu3_4, relu4_4, relu5_4: F_vgg^(i) of Eq. 1, i = 0..4."""
SCALE_CHANNELS = (64, 128, 256, 512, 512)
"""Channels of F_vgg^(i), i = 0..4."""
PERCEPTUAL_LAYERS = (1, 6, 11, 20, 29)
"""Indices of relu1_1, relu2_1, relu3_1, relu4_1, relu5_1: the layers of SPADE's VGG (perceptual) loss."""
MAX_SCALES = len(SCALE_LAYERS) - 1
"""The largest L: VGG-19 has five resolution blocks."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

KEYWORD_BACKBONES = ("imagenet", "random")

# ---------------------------------------------------------------------------------------------
# VGG-19 weights


class BackboneWeightsMissing(FileNotFoundError):
    """Requested VGG-19 weights are not on disk; the message says which file and where to get it."""

    def __init__(self, message: str, *, path: Path):
        super().__init__(message)
        self.filename = str(path)

    def __str__(self) -> str:
        return self.args[0]


class BackboneWeightsInvalid(ValueError):
    """A VGG-19 weights file exists but does not hold a VGG-19 `features` state dict."""


def imagenet_weights_path() -> Path:
    """Where torchvision keeps VGG19_Weights.IMAGENET1K_V1: <torch.hub.get_dir()>/checkpoints/<url's file name>."""
    file_name = Path(urlparse(VGG19_Weights.IMAGENET1K_V1.url).path).name
    return Path(torch.hub.get_dir()) / "checkpoints" / file_name


def backbone_label(backbone: str) -> str:
    """The string recorded with every model and metric: vgg19-imagenet, vgg19-random or vgg19-file:<name>."""
    if backbone in KEYWORD_BACKBONES:
        return f"vgg19-{backbone}"
    return f"vgg19-file:{Path(backbone).name}"


def _empty_vgg19() -> nn.Sequential:
    """VGG-19's `features` layout (configuration "E") with uninitialized weights, built on the meta
    device so that construction neither spends time on an init we overwrite nor touches the global RNG."""
    with torch.device("meta"):
        layers = make_layers(cfgs["E"], batch_norm=False)
    return layers.to_empty(device="cpu")


def _random_init_(layers: nn.Sequential, seed: int) -> None:
    """torchvision's VGG init (Kaiming normal, fan_out, ReLU gain; zero bias) from a local generator."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in layers:
            if isinstance(layer, nn.Conv2d):
                nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu", generator=generator)
                nn.init.zeros_(layer.bias)


def _load_state_dict_file(layers: nn.Sequential, path: Path) -> None:
    """Load a whole VGG-19 state dict (keys `features.*`, torchvision's file) or a `features`-only one."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # any unreadable file gets the same one-line message
        raise BackboneWeightsInvalid(
            f"VGG-19 weights file {path} cannot be read: {torch_load_problem(error)}"
        ) from None
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise BackboneWeightsInvalid(f"VGG-19 weights file {path} does not hold a state dict of tensors")
    if any(key.startswith("features.") for key in state):
        state = {key.removeprefix("features."): v for key, v in state.items() if key.startswith("features.")}
    try:
        layers.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first = str(error).strip().splitlines()
        detail = " ".join(line.strip() for line in first[1:3]) if len(first) > 1 else first[0]
        raise BackboneWeightsInvalid(f"VGG-19 weights file {path} does not match VGG-19's features: {detail}") from None


def load_vgg19(backbone: str, *, seed: int) -> nn.Sequential:
    """torchvision's VGG-19 `features` network (37 layers), in eval mode; callers freeze it.

    Args:
        backbone: `imagenet` (VGG19_Weights.IMAGENET1K_V1 from the torch hub cache, never downloaded),
            `random` (torchvision's init, deterministic in `seed`, global RNG untouched), or the path
            of a state-dict file (torchvision's whole-VGG file or a `features` state dict).
        seed: seed of the `random` initialization; ignored otherwise.
    Raises:
        BackboneWeightsMissing: the ImageNet file or the given path does not exist.
        BackboneWeightsInvalid: the file is not a VGG-19 state dict.
    """
    layers = _empty_vgg19()
    if backbone == "random":
        _random_init_(layers, seed)
    elif backbone == "imagenet":
        path = imagenet_weights_path()
        url = VGG19_Weights.IMAGENET1K_V1.url
        if not path.is_file():
            raise BackboneWeightsMissing(
                f"VGG-19 ImageNet weights not found at {path} (nothing is downloaded): download {url} to that path, "
                f"or set `model.backbone: <path to a VGG-19 state dict>` or `model.backbone: random`",
                path=path,
            )
        _load_state_dict_file(layers, path)
    else:
        path = Path(backbone).expanduser()
        if not path.is_file():
            raise BackboneWeightsMissing(
                f"VGG-19 weights file {path} (model.backbone) does not exist; "
                f"give the path of a VGG-19 state dict, or `imagenet` or `random`",
                path=path,
            )
        _load_state_dict_file(layers, path)
    log.info("VGG-19 backbone: %s", backbone_label(backbone))
    return layers.eval()


# ---------------------------------------------------------------------------------------------
# helpers


def scale_size(size: tuple[int, int], scale: int) -> tuple[int, int]:
    """Resolution of scale i: (H // 2**i, W // 2**i), as VGG's max-pooling gives."""
    height, width = size
    return height >> scale, width >> scale


def resize_labels(c: Tensor, size: tuple[int, int] | torch.Size) -> Tensor:
    """One-hot label maps [B, C, H, W] resized to `size` with F.interpolate(mode="nearest"), so they stay one-hot.

    A reduction by a whole factor on both sides (every VGG scale of a map whose sides divide by 2^L) is the
    same nearest sampling, source pixel i * factor, taken as a strided slice: no copy of the C-channel map,
    which F.interpolate spent a fifth of an evaluation on."""
    height, width = c.shape[-2:]
    out_height, out_width = size
    if (height, width) == (out_height, out_width):
        return c
    if height % out_height == 0 and width % out_width == 0:
        return c[..., :: height // out_height, :: width // out_width]
    return F.interpolate(c, size=(out_height, out_width), mode="nearest")


# ---------------------------------------------------------------------------------------------
# classes


class VGGFeatures(nn.Module):
    """Frozen VGG-19 F_vgg^(i) of Eq. 1 at scales 0..L, plus the perceptual-loss layers.

    Weights never require grad and the network stays in eval mode under `.train()`; gradients still
    flow to the input image (the perceptual loss needs them).
    """

    def __init__(
        self,
        *,
        backbone: str,  # imagenet | random | path of a state dict (see load_vgg19)
        seed: int,  # seed of the random backbone
        num_scales: int,  # L: features at scales 0..L, L <= 4
    ):
        super().__init__()
        assert 0 <= num_scales <= MAX_SCALES, f"VGG-19 gives scales 0..{MAX_SCALES}, asked for L = {num_scales}"
        self.num_scales = num_scales
        self.backbone = backbone_label(backbone)
        self.channels = list(SCALE_CHANNELS[: num_scales + 1])
        depth = max(SCALE_LAYERS[num_scales], PERCEPTUAL_LAYERS[-1]) + 1
        self.body = load_vgg19(backbone, seed=seed)[:depth]
        self.body.requires_grad_(False)
        mean = rearrange(torch.tensor(IMAGENET_MEAN), "c -> 1 c 1 1")  # [1, 3, 1, 1]
        std = rearrange(torch.tensor(IMAGENET_STD), "c -> 1 c 1 1")  # [1, 3, 1, 1]
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)
        self.train(False)

    def train(self, mode: bool = True) -> VGGFeatures:
        """Always eval: a frozen extractor has no training behaviour (`mode` is ignored)."""
        return super().train(False)

    def _normalize(self, image: Tensor) -> Tensor:
        assert image.dim() == 4 and image.shape[1] == 3, f"expects images [B, 3, H, W], got {tuple(image.shape)}"
        return ((image + 1) / 2 - self.mean) / self.std  # [-1, 1] -> ImageNet statistics

    def _run(self, image: Tensor, taps: tuple[int, ...]) -> list[Tensor]:
        h = self._normalize(image)
        outputs = []
        for index, layer in enumerate(self.body):
            h = layer(h)
            if index in taps:
                outputs.append(h)
            if index == taps[-1]:
                return outputs
        raise AssertionError(f"VGG body ends before layer {taps[-1]}")

    def forward(self, image: Tensor) -> list[Tensor]:
        """F_vgg^(i)(image) for i = 0..L: relu1_2, relu2_2, relu3_4, relu4_4, relu5_4, each [B, C_i, H/2^i, W/2^i]."""
        return self._run(image, SCALE_LAYERS[: self.num_scales + 1])

    def perceptual_layers(self, image: Tensor) -> list[Tensor]:
        """relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 of `image` in [-1, 1], for SPADE's VGG loss."""
        return self._run(image, PERCEPTUAL_LAYERS)


class ImageEncoder(nn.Module):
    """Eq. 1: F_x^(i) = W_x^(i) * F_vgg^(i)(x), a 1x1 compression per scale of frozen VGG-19 features.

    With `colors` (not in the paper) W_x^(i) also reads the image itself, area-averaged to scale i:
    F_x^(i) = W_x^(i) * [F_vgg^(i)(x), x^(i)]. A random VGG-19's rectified features hold an image's
    chroma only entangled with its luminance, which a CPU training does not learn to undo (README, Deviations).
    """

    def __init__(
        self,
        *,
        vgg: VGGFeatures,  # the frozen extractor (its scales set L)
        image_channels: int,  # N: channels of F_x^(i)
        colors: bool = False,  # W_x also reads the RGB image at each scale
    ):
        super().__init__()
        self.vgg = vgg
        self.image_channels = image_channels
        self.colors = colors
        extra = 3 if colors else 0
        self.projections = nn.ModuleList(
            nn.Conv2d(c + extra, image_channels, kernel_size=1) for c in vgg.channels
        )  # W_x^(i)

    def forward(self, x: Tensor) -> list[Tensor]:
        """Images [B, 3, H, W] in [-1, 1] -> F_x^(i) [B, N, H/2^i, W/2^i] for i = 0..L."""
        # VGG is frozen: build its graph only when the image itself needs a gradient
        with torch.set_grad_enabled(torch.is_grad_enabled() and x.requires_grad):
            features = self.vgg(x)
        if self.colors:
            features = [torch.cat([f, F.adaptive_avg_pool2d(x, f.shape[-2:])], dim=1) for f in features]
        return [w_x(f) for w_x, f in zip(self.projections, features, strict=True)]


class LabelEncoder(nn.Module):
    """Eq. 2-3: label features from coarse to fine; the same weights W_c encode c1 and c̃2.

    F_c^(L) = LReLU(W_c^(L) * c^(L)); F_c^(i) = LReLU(W_c^(i) * [up(F_c^(i+1)), c^(i)]) for i < L, with
    c^(i) the label map resized by nearest neighbour and `up` the x2 bilinear upsampling (sized to the
    exact scale-i resolution when a size is odd).
    """

    def __init__(
        self,
        *,
        num_classes: int,  # C: one-hot channels of the label maps
        label_channels: int,  # M: channels of F_c^(i)
        num_scales: int,  # L: scales 0..L
        negative_slope: float = 0.2,  # of the LReLU (the paper does not give it; SPADE's 0.2)
    ):
        super().__init__()
        self.num_classes = num_classes
        self.num_scales = num_scales
        self.convs = nn.ModuleList(
            nn.Conv2d(num_classes if i == num_scales else label_channels + num_classes, label_channels, kernel_size=1)
            for i in range(num_scales + 1)
        )  # W_c^(i), finest first
        self.activation = nn.LeakyReLU(negative_slope)

    def forward(self, c: Tensor) -> list[Tensor]:
        """One-hot labels [B, C, H, W] -> F_c^(i) [B, M, H/2^i, W/2^i] for i = 0..L (finest first)."""
        assert c.dim() == 4 and c.shape[1] == self.num_classes, (
            f"expects one-hot labels [B, {self.num_classes}, H, W], got {tuple(c.shape)}"
        )
        features: list[Tensor] = []
        f = None
        for i in reversed(range(self.num_scales + 1)):
            size = scale_size(tuple(c.shape[-2:]), i)
            c_i = resize_labels(c, size)  # [B, C, H/2^i, W/2^i]
            if f is None:
                h = c_i  # Eq. 2, i = L
            else:
                up = F.interpolate(f, size=size, mode="bilinear", align_corners=False)  # [B, M, H/2^i, W/2^i]
                h = torch.cat([up, c_i], dim=1)  # [B, M + C, H/2^i, W/2^i]
            f = self.activation(self.convs[i](h))  # [B, M, H/2^i, W/2^i]
            features.append(f)
        return features[::-1]
