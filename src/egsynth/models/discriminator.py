"""The conditional discriminator D(x, c, x2, c̃2) of Eq. 11 (Sec. 3.4).

Eq. 11 scores an image x together with its label map c and the exemplar pair (x2, c̃2) it was
synthesized from: log D(x_p, c_p, x_q, c̃_q) + log(1 - D(x̂_p, c_p, x_q, c̃_q)) for the patch
cross-reconstruction task, and the same with (x, c, x, c̃) for the global self-reconstruction task.
The four inputs are concatenated along channels, so D judges both realism, alignment with c and
style consistency with the exemplar.

The network is pix2pixHD's multiscale PatchGAN as used by SPADE [38]: several identical
PatchGANs, each on the input average-pooled once more than the previous one; each returns its
intermediate features (for SPADE's feature matching loss, `egsynth.losses.feature_matching_loss`)
and its patch logits last.

References: Wang et al., "High-Resolution Image Synthesis and Semantic Manipulation with Conditional
GANs" (pix2pixHD); Park et al., SPADE [38]; Miyato et al., spectral normalization.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from egsynth.config import TrainConfig
from egsynth.data.cocostuff import NUM_CLASSES

# ----------------------------------------------------------------------------
# classes


class PatchDiscriminator(nn.Module):
    """A PatchGAN: 4x4 convs, the first n_layers with stride 2, then one with stride 1, then 1-channel logits.

    Every conv is spectrally normalized; every layer but the first and the logits has an instance
    norm; activations are LeakyReLU(0.2). With n_layers = 3 the logits are ~H/8 x W/8, each
    seeing a 70x70 receptive field.
    """

    def __init__(
        self,
        *,
        in_channels: int,  # channels of the concatenated input
        ndf: int = 64,  # width of the first layer, doubled per layer up to 8 * ndf
        n_layers: int = 3,  # stride-2 convs (the stride-1 conv and the logits conv come after)
    ) -> None:
        super().__init__()
        assert n_layers >= 1, f"n_layers must be >= 1, got {n_layers}"
        padding = math.ceil((4 - 1) / 2)  # 2, as pix2pixHD
        width = ndf
        layers = [nn.Sequential(spectral_norm(nn.Conv2d(in_channels, width, 4, 2, padding)), nn.LeakyReLU(0.2))]
        for n in range(1, n_layers + 1):
            stride = 2 if n < n_layers else 1
            previous, width = width, min(width * 2, ndf * 8)
            layers.append(
                nn.Sequential(
                    spectral_norm(nn.Conv2d(previous, width, 4, stride, padding)),
                    nn.InstanceNorm2d(width, affine=False),
                    nn.LeakyReLU(0.2),
                )
            )
        layers.append(spectral_norm(nn.Conv2d(width, 1, 4, 1, padding)))
        self.layers = nn.ModuleList(layers)
        self.in_channels = in_channels

    def forward(self, x: Tensor) -> list[Tensor]:
        """x [B, in_channels, H, W] -> n_layers + 1 feature maps, then the logits [B, 1, h, w] last."""
        assert x.dim() == 4 and x.shape[1] == self.in_channels, (
            f"expected [B, {self.in_channels}, H, W], got {tuple(x.shape)}"
        )
        outputs = []
        for layer in self.layers:
            x = layer(x)  # [B, width, H / 2**n (+1), W / 2**n (+1)]
            outputs.append(x)
        return outputs


class MultiscaleDiscriminator(nn.Module):
    """D(x, c, x2, c̃2) of Eq. 11: PatchGANs on [x, c, x2, c̃2] at successively halved resolutions.

    Input channels: image (3) + its one-hot labels (C) + exemplar image (3) + exemplar parsed
    one-hot labels (C). An exemplar of another size than the image is resized to it (bilinear for
    the image, nearest for the labels, which keeps them one-hot). Discriminator k > 0 sees the
    input average-pooled k times (3x3, stride 2, padding 1, padding excluded from the average).
    """

    def __init__(
        self,
        *,
        num_classes: int,  # C, channels of the one-hot label maps c and c̃2
        ndf: int = 64,  # width of each PatchGAN's first layer
        num_discriminators: int = 2,  # PatchGANs, the k-th on the input downsampled k times
        n_layers: int = 3,  # stride-2 convs per PatchGAN
    ) -> None:
        super().__init__()
        assert num_discriminators >= 1, f"num_discriminators must be >= 1, got {num_discriminators}"
        self.num_classes = num_classes
        in_channels = 2 * (3 + num_classes)
        self.discriminators = nn.ModuleList(
            PatchDiscriminator(in_channels=in_channels, ndf=ndf, n_layers=n_layers) for _ in range(num_discriminators)
        )

    def forward(self, image: Tensor, labels: Tensor, exemplar: Tensor, exemplar_labels: Tensor) -> list[list[Tensor]]:
        """image [B, 3, H, W], labels [B, C, H, W], exemplar [B, 3, h, w], exemplar_labels [B, C, h', w'].

        Returns, per discriminator (finest input first), its features with the patch logits last.
        """
        b, _, h, w = image.shape
        c = self.num_classes
        assert image.dim() == 4 and image.shape[1] == 3, f"image must be [B, 3, H, W], got {tuple(image.shape)}"
        assert labels.shape == (b, c, h, w), f"labels must be [{b}, {c}, {h}, {w}], got {tuple(labels.shape)}"
        assert exemplar.dim() == 4 and exemplar.shape[:2] == (b, 3), (
            f"exemplar must be [{b}, 3, h, w], got {tuple(exemplar.shape)}"
        )
        assert exemplar_labels.dim() == 4 and exemplar_labels.shape[:2] == (b, c), (
            f"exemplar_labels must be [{b}, {c}, h, w], got {tuple(exemplar_labels.shape)}"
        )
        if exemplar.shape[-2:] != (h, w):
            exemplar = F.interpolate(exemplar, size=(h, w), mode="bilinear", align_corners=False)  # [B, 3, H, W]
        if exemplar_labels.shape[-2:] != (h, w):
            exemplar_labels = F.interpolate(exemplar_labels, size=(h, w), mode="nearest")  # [B, C, H, W]
        x = torch.cat([image, labels, exemplar, exemplar_labels], dim=1)  # [B, 2 (3 + C), H, W]
        outputs = []
        for k, discriminator in enumerate(self.discriminators):
            if k > 0:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)  # [B, 2 (3 + C), H/2**k, W/2**k]
            outputs.append(discriminator(x))
        return outputs


def build_discriminator(config: TrainConfig, *, num_classes: int = NUM_CLASSES) -> MultiscaleDiscriminator:
    """D from the train params, its weights initialized from `config.seed` whatever the global RNG holds:
    an unseeded D made two trainings of the same params differ from their first step."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return MultiscaleDiscriminator(
            num_classes=num_classes, ndf=config.ndf, num_discriminators=config.num_discriminators
        )
