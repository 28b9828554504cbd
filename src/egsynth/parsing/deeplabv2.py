"""DeepLab-v2 with a ResNet-101 trunk (Chen et al., "DeepLab: Semantic Image Segmentation with Deep
Convolutional Nets, Atrous Convolution, and Fully Connected CRFs", TPAMI 2017), laid out so that the
COCO-stuff checkpoints of kazuto1011/deeplab-pytorch load as they are.

Zheng et al. parse exemplars with "DeepLab-v2 trained on COCO-stuff" (Sec. 4); the public PyTorch
weights of that network are deeplab-pytorch's `deeplabv2_resnet101_msc-cocostuff164k-100000.pth` (and
`deeplabv2_resnet101_msc-cocostuff10k-20000.pth`, same layout). What this module reproduces of
deeplab-pytorch v1.0 (libs/models/resnet.py, deeplabv2.py, msc.py; demo.py; configs/cocostuff164k.yaml):
- trunk: Caffe's (MSRA's) ResNet-101: a 7x7/2 conv and a 3x3/2 max pool with ceil mode, bottlenecks
  that stride in their first 1x1 conv, 3, 4, 23, 3 blocks; layer4 and layer5 keep stride 1 and use
  atrous rates 2 and 4 instead (TPAMI Sec. 3.1), so the output stride is 8;
- head: ASPP-L (TPAMI Sec. 3.2): four parallel 3x3 convs with rates 6, 12, 18, 24 and biases, each
  straight to logits, summed;
- outputs: 182 channels, channel k for stuffthingmaps value k (COCO-stuff id k + 1); 11 of the values
  have no class, the other 171 are egsynth's classes (`cocostuff.label_value_to_index`);
- input: BGR values in 0..255 minus Caffe DeepLab's mean (104.008, 116.669, 122.675), no division;
- multi-scale inputs (TPAMI Sec. 4.1, deeplab-pytorch's `MSC`): at test time the logits of the input
  at scales 1, 0.5 and 0.75 are fused by their element-wise maximum;
- state dict: `MSC` holds the network as `base`, so keys read `base.layer1.conv1.conv.weight`,
  `base.layer2.block1.shortcut.bn.running_var`, `base.aspp.c3.bias` (632 tensors, batch-norm step
  counters included).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from egsynth.data import cocostuff
from egsynth.data.labels import INDEX_TO_VALUE

NUM_LABEL_VALUES = 182  # outputs of deeplab-pytorch's COCO-stuff models: stuffthingmaps values 0..181
MEAN_BGR = (104.008, 116.669, 122.675)  # Caffe DeepLab's pixel mean, subtracted from BGR values in 0..255
BLOCKS = (3, 4, 23, 3)  # bottlenecks of layer2 .. layer5 (ResNet-101)
ATROUS_RATES = (6, 12, 18, 24)  # ASPP-L
FUSION_SCALES = (0.5, 0.75)  # test-time input scales max-fused with the full-size logits (MSC)
BN_EPS = 1e-5
BN_MOMENTUM = 1 - 0.999  # Caffe's moving-average fraction 0.999, in PyTorch's convention

# ----------------------------------------------------------------------------
# blocks


class CaffeInput(nn.Module):
    """egsynth's images ([-1, 1] RGB) -> the input the Caffe-trained weights expect (BGR 0..255 minus MEAN_BGR)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean_bgr", torch.tensor(MEAN_BGR).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return (x.flip(1) + 1) * 127.5 - self.mean_bgr  # [B, 3 (BGR), H, W]


class ConvNorm(nn.Module):
    """A bias-free conv, then batch norm, then (unless `relu` is False) ReLU; deeplab-pytorch's `conv`, `bn`."""

    def __init__(
        self,
        *,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        dilation: int = 1,  # atrous rate; the padding keeps the size ("same" for stride 1)
        relu: bool = True,
    ):
        super().__init__()
        padding = dilation * (kernel_size // 2)
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding, dilation=dilation, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.relu = relu

    def forward(self, x: Tensor) -> Tensor:
        x = self.bn(self.conv(x))
        return F.relu(x) if self.relu else x


class Bottleneck(nn.Module):
    """MSRA ResNet bottleneck: 1x1 (carries the stride) -> 3x3 atrous -> 1x1, plus the identity or a projection."""

    def __init__(
        self,
        *,
        in_channels: int,
        out_channels: int,  # the inner convs have a quarter of them
        stride: int,
        dilation: int,  # atrous rate of the 3x3 conv
        project: bool,  # a 1x1 conv shortcut (a layer's first block) instead of the identity
    ):
        super().__init__()
        inner = out_channels // 4
        self.reduce = ConvNorm(in_channels=in_channels, out_channels=inner, kernel_size=1, stride=stride)
        self.conv3x3 = ConvNorm(in_channels=inner, out_channels=inner, kernel_size=3, dilation=dilation)
        self.increase = ConvNorm(in_channels=inner, out_channels=out_channels, kernel_size=1, relu=False)
        self.shortcut = (
            ConvNorm(in_channels=in_channels, out_channels=out_channels, kernel_size=1, stride=stride, relu=False)
            if project
            else nn.Identity()
        )

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.increase(self.conv3x3(self.reduce(x))) + self.shortcut(x))


def residual_layer(*, blocks: int, in_channels: int, out_channels: int, stride: int, dilation: int) -> nn.Sequential:
    """`blocks` bottlenecks named block1, block2, ...; only the first one strides and projects."""
    return nn.Sequential(
        OrderedDict(
            (
                f"block{i + 1}",
                Bottleneck(
                    in_channels=out_channels if i else in_channels,
                    out_channels=out_channels,
                    stride=1 if i else stride,
                    dilation=dilation,
                    project=i == 0,
                ),
            )
            for i in range(blocks)
        )
    )


def stem() -> nn.Sequential:
    """7x7/2 conv and 3x3/2 max pool rounding up like Caffe's (ceil mode): 16 px -> 8 -> 5, not 4; 513 -> 257 -> 129."""
    return nn.Sequential(
        OrderedDict(
            conv1=ConvNorm(in_channels=3, out_channels=64, kernel_size=7, stride=2),
            pool=nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True),
        )
    )


class ASPP(nn.Module):
    """DeepLab-v2's atrous spatial pyramid pooling (TPAMI Sec. 3.2): parallel 3x3 convs at the `rates`, each
    giving logits of its own field of view; the output is their sum."""

    def __init__(self, *, in_channels: int, out_channels: int, rates: Sequence[int]):
        super().__init__()
        for i, rate in enumerate(rates):
            branch = nn.Conv2d(in_channels, out_channels, 3, padding=rate, dilation=rate)
            nn.init.normal_(branch.weight, std=0.01)  # the initialization of the Caffe prototxt
            nn.init.zeros_(branch.bias)
            self.add_module(f"c{i}", branch)

    def forward(self, x: Tensor) -> Tensor:
        return torch.stack([branch(x) for branch in self.children()]).sum(0)  # [B, K, h, w]


# ----------------------------------------------------------------------------
# network


class DeepLabV2(nn.Module):
    """DeepLab-v2 ResNet-101 as a parser: [-1, 1] RGB images [B, 3, H, W] -> {"out": logits [B, C, H, W]}.

    `base` holds the network in deeplab-pytorch's layout (state-dict keys `base.…`). Its `label_channels`
    logits are computed at output stride 8, max-fused over `fusion_scales` in eval mode, reduced to the
    `class_channels` (class c is channel class_channels[c]) and upsampled bilinearly to the input size.
    """

    def __init__(
        self,
        *,
        label_channels: int,  # outputs of the ASPP head
        class_channels: Sequence[int],  # the head channel of each class, in class order
        fusion_scales: Sequence[float] = FUSION_SCALES,  # extra test-time input scales; () for single scale
    ):
        super().__init__()
        assert all(0 <= c < label_channels for c in class_channels), "class_channels must index the head's outputs"
        self.to_caffe_input = CaffeInput()
        widths = (256, 512, 1024, 2048)  # outputs of layer2 .. layer5
        self.base = nn.Sequential(
            OrderedDict(
                layer1=stem(),
                layer2=residual_layer(blocks=BLOCKS[0], in_channels=64, out_channels=widths[0], stride=1, dilation=1),
                layer3=residual_layer(
                    blocks=BLOCKS[1], in_channels=widths[0], out_channels=widths[1], stride=2, dilation=1
                ),
                layer4=residual_layer(
                    blocks=BLOCKS[2], in_channels=widths[1], out_channels=widths[2], stride=1, dilation=2
                ),
                layer5=residual_layer(
                    blocks=BLOCKS[3], in_channels=widths[2], out_channels=widths[3], stride=1, dilation=4
                ),
                aspp=ASPP(in_channels=widths[3], out_channels=label_channels, rates=ATROUS_RATES),
            )
        )
        self.register_buffer("class_channels", torch.tensor(list(class_channels), dtype=torch.long), persistent=False)
        self.fusion_scales = tuple(fusion_scales)

    @property
    def backbone(self) -> nn.ModuleDict:
        """The blocks from a [-1, 1] image to layer5's features, in order, like a torchvision network's `backbone`."""
        trunk = {name: block for name, block in self.base.named_children() if name != "aspp"}
        return nn.ModuleDict({"input": self.to_caffe_input, **trunk})

    def forward(self, image: Tensor) -> dict[str, Tensor]:
        assert image.ndim == 4 and image.shape[1] == 3, f"expects images [B, 3, H, W], got {tuple(image.shape)}"
        x = self.to_caffe_input(image)  # [B, 3, H, W]
        logits = self.base(x)  # [B, K, h, w], output stride 8: 513 -> 65
        if not self.training:
            for scale in self.fusion_scales:
                scaled = F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)  # [B, 3, sH, sW]
                scaled_logits = self.base(scaled)  # [B, K, ~s h, ~s w]
                scaled_logits = F.interpolate(
                    scaled_logits, size=logits.shape[-2:], mode="bilinear", align_corners=False
                )
                logits = torch.maximum(logits, scaled_logits)  # [B, K, h, w]
        logits = logits[:, self.class_channels]  # [B, C, h, w]
        return {"out": F.interpolate(logits, size=image.shape[-2:], mode="bilinear", align_corners=False)}


def deeplabv2_resnet101(num_classes: int = cocostuff.NUM_CLASSES) -> DeepLabV2:
    """DeepLab-v2 ResNet-101 with fresh weights; nothing is downloaded.

    For COCO-stuff's classes the head has deeplab-pytorch's 182 label-value outputs, so its COCO-stuff
    checkpoints load unchanged, and class c reads the output of its stuffthingmaps value INDEX_TO_VALUE[c].
    For any other number of classes the head has one output per class.
    """
    if num_classes == cocostuff.NUM_CLASSES:
        return DeepLabV2(label_channels=NUM_LABEL_VALUES, class_channels=INDEX_TO_VALUE.tolist())
    return DeepLabV2(label_channels=num_classes, class_channels=range(num_classes))
