"""The image synthesis module: SPADE residual blocks conditioned on aligned features (Sec. 3.3, appendix E).

Sec. 3.3 feeds "the concatenation of F_x1^(i) and F_c1^(i) to the spatially-adaptive denormalization
layer of SPADE [38] at each scale"; appendix E (Fig. 15): "at each scale, a SPADE residue block with
upsampling layer takes the concatenation of F_x1^(i) and F_c1^(i) as input to generate an upsampled
feature map or image".

Unlike SPADE, the condition of a SPADE layer is a feature map [F_x1^(i), F_c1^(i)], not a one-hot
label map, so it is resized bilinearly (not by nearest neighbour) when its size differs from the
normalized activation's.

The parameter-free normalization is a parameter (docs/design.md, "Scale"): `instance` is batch-independent,
so a CPU DDP step equals the single-process step; `batch` is SPADE's choice and becomes
`nn.SyncBatchNorm` under DDP on GPUs (the trainer converts it with
`nn.SyncBatchNorm.convert_sync_batchnorm`; torch's SyncBatchNorm refuses CPU tensors).

References: Park et al., "Semantic Image Synthesis with Spatially-Adaptive Normalization" (SPADE, [38]).
"""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

Norm = Literal["instance", "batch"]

STYLE_GRID = 4
"""VAE mode: side of the map SPADE's fc draws from the style code z, before it is resized to the coarsest scale."""

# ----------------------------------------------------------------------------
# helpers


def width_at(scale: int, ngf: int) -> int:
    """Channels of the synthesis network's features at scale i (resolution H / 2**i).

    The width doubles with each coarser scale and is capped at 8 * ngf, as in SPADE's generator
    (ngf, 2 ngf, 4 ngf, 8 ngf, 8 ngf, ... from the finest scale up).
    """
    assert scale >= 0 and ngf >= 1, f"width_at needs scale >= 0 and ngf >= 1, got {scale}, {ngf}"
    return ngf * min(2**scale, 8)


def parameter_free_norm(norm: Norm, channels: int) -> nn.Module:
    """SPADE's normalization without learned affine parameters (gamma and beta come from the condition)."""
    if norm == "instance":
        return nn.InstanceNorm2d(channels, affine=False)
    if norm == "batch":
        return nn.BatchNorm2d(channels, affine=False)
    raise ValueError(f"SPADE norm must be 'instance' or 'batch', got {norm!r}")


def maybe_spectral(conv: nn.Conv2d, spectral: bool) -> nn.Module:
    """`conv` with spectral normalization of its weight (torch parametrization) when `spectral`."""
    return spectral_norm(conv) if spectral else conv


def assert_4d(name: str, x: Tensor, channels: int) -> None:
    assert x.dim() == 4 and x.shape[1] == channels, f"{name} must be [B, {channels}, H, W], got {tuple(x.shape)}"


# ----------------------------------------------------------------------------
# classes


class SPADE(nn.Module):
    """Spatially-adaptive denormalization: out = norm(x) * (1 + gamma(cond)) + beta(cond).

    gamma and beta are per-pixel, per-channel maps predicted from the condition [F_x1^(i), F_c1^(i)]
    (Sec. 3.3) by a shared 3x3 conv + ReLU followed by one 3x3 conv each.
    """

    def __init__(
        self,
        *,
        channels: int,  # channels of the activation x being normalized
        condition_channels: int,  # channels of the condition, here [F_x1^(i), F_c1^(i)]
        hidden: int = 128,  # width of the shared conv on the condition (SPADE: 128)
        norm: Norm = "instance",  # parameter-free normalization: instance | batch
    ) -> None:
        super().__init__()
        self.channels = channels
        self.condition_channels = condition_channels
        self.norm = parameter_free_norm(norm, channels)
        self.shared = nn.Sequential(nn.Conv2d(condition_channels, hidden, 3, padding=1), nn.ReLU())
        self.gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.beta = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, x: Tensor, condition: Tensor) -> Tensor:
        """x [B, channels, H, W], condition [B, condition_channels, h, w] (resized bilinearly to H x W)."""
        assert_4d("x", x, self.channels)
        assert_4d("condition", condition, self.condition_channels)
        assert condition.shape[0] == x.shape[0], f"batch sizes differ: x {x.shape[0]}, condition {condition.shape[0]}"
        normalized = self.norm(x)  # [B, channels, H, W]
        if condition.shape[-2:] != x.shape[-2:]:
            condition = F.interpolate(condition, size=x.shape[-2:], mode="bilinear", align_corners=False)
        hidden = self.shared(condition)  # [B, hidden, H, W]
        return normalized * (1 + self.gamma(hidden)) + self.beta(hidden)  # [B, channels, H, W]


class SPADEResBlock(nn.Module):
    """SPADE's residual block: two (SPADE, LReLU 0.2, conv 3x3) steps plus a shortcut.

    The shortcut is the identity when in_channels == out_channels, otherwise a learned
    (SPADE, conv 1x1 without bias). The middle width is min(in_channels, out_channels).
    """

    def __init__(
        self,
        *,
        in_channels: int,  # channels of the input activation
        out_channels: int,  # channels of the output activation
        condition_channels: int,  # channels of the SPADE condition [F_x1^(i), F_c1^(i)]
        norm: Norm = "instance",  # SPADE's parameter-free normalization: instance | batch
        spectral: bool = True,  # spectral normalization on the block's convs (as SPADE)
        hidden: int = 128,  # width of each SPADE layer's shared conv
    ) -> None:
        super().__init__()
        middle = min(in_channels, out_channels)
        self.in_channels = in_channels
        self.out_channels = out_channels
        spade = dict(condition_channels=condition_channels, hidden=hidden, norm=norm)
        self.norm_0 = SPADE(channels=in_channels, **spade)
        self.conv_0 = maybe_spectral(nn.Conv2d(in_channels, middle, 3, padding=1), spectral)
        self.norm_1 = SPADE(channels=middle, **spade)
        self.conv_1 = maybe_spectral(nn.Conv2d(middle, out_channels, 3, padding=1), spectral)
        self.learned_shortcut = in_channels != out_channels
        if self.learned_shortcut:
            self.norm_s = SPADE(channels=in_channels, **spade)
            self.conv_s = maybe_spectral(nn.Conv2d(in_channels, out_channels, 1, bias=False), spectral)

    def forward(self, x: Tensor, condition: Tensor) -> Tensor:
        """x [B, in_channels, H, W], condition [B, condition_channels, h, w] -> [B, out_channels, H, W]."""
        shortcut = self.conv_s(self.norm_s(x, condition)) if self.learned_shortcut else x  # [B, out, H, W]
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, condition), 0.2))  # [B, middle, H, W]
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, condition), 0.2))  # [B, out, H, W]
        return shortcut + dx


class SynthesisNetwork(nn.Module):
    """The synthesis module of appendix E (Fig. 15): x̂ from the conditions [F_x1^(i), F_c1^(i)], i = 0..L.

    A 3x3 conv maps the coarsest condition to width_at(L) channels; then for i = L..0 a SPADE
    residual block conditioned on scale i's condition maps the features to width_at(i) channels,
    and (for i > 0) a x2 nearest upsampling brings them to scale i-1's exact size (odd sizes
    included). A final LReLU, 3x3 conv to RGB and tanh give the image in [-1, 1] at scale 0's size.

    With `style_dim` > 0 the start is SPADE's VAE mode instead (its generator's `use_vae`): a linear
    layer maps the style code z to a width_at(L) x STYLE_GRID x STYLE_GRID map, resized (nearest) to
    the coarsest condition's size, and the conditions carry the labels only. SPADE's fc draws an
    8 x 8 map for 256 px images; a fixed grid resized to the coarsest scale lets one network take the
    patches and the global images of training, and targets of any size.
    """

    def __init__(
        self,
        *,
        condition_channels: list[int],  # per scale 0..L, channels of [F_x1^(i), F_c1^(i)]
        ngf: int,  # base width: scale i has width_at(i, ngf) channels
        norm: Norm = "instance",  # SPADE's parameter-free normalization: instance | batch
        hidden: int = 128,  # width of each SPADE layer's shared conv (SPADE: 128)
        spectral: bool = True,  # spectral normalization on the residual blocks' convs
        style_dim: int = 0,  # SPADE's VAE mode: size of the style code z the start is drawn from; 0: a conv head
    ) -> None:
        super().__init__()
        assert len(condition_channels) >= 1, "condition_channels needs one entry per scale 0..L"
        assert style_dim >= 0, f"style_dim must be >= 0, got {style_dim}"
        self.condition_channels = list(condition_channels)
        self.num_scales = len(condition_channels) - 1  # L
        self.style_dim = style_dim
        top = self.num_scales
        if style_dim:
            self.head = nn.Linear(style_dim, width_at(top, ngf) * STYLE_GRID**2)
        else:
            self.head = nn.Conv2d(condition_channels[top], width_at(top, ngf), 3, padding=1)
        self.blocks = nn.ModuleList(  # blocks[i] works at scale i
            SPADEResBlock(
                in_channels=width_at(min(i + 1, top), ngf),
                out_channels=width_at(i, ngf),
                condition_channels=condition_channels[i],
                norm=norm,
                spectral=spectral,
                hidden=hidden,
            )
            for i in range(top + 1)
        )
        self.to_image = nn.Conv2d(width_at(0, ngf), 3, 3, padding=1)

    def forward(self, conditions: list[Tensor], z: Tensor | None = None) -> Tensor:
        """conditions: finest first, scale i [B, condition_channels[i], ~H/2**i, ~W/2**i]; z [B, style_dim] in
        VAE mode (else None) -> [B, 3, H, W] in [-1, 1]."""
        assert len(conditions) == self.num_scales + 1, (
            f"expected {self.num_scales + 1} conditions (scales 0..{self.num_scales}), got {len(conditions)}"
        )
        for i, (condition, channels) in enumerate(zip(conditions, self.condition_channels, strict=True)):
            assert_4d(f"conditions[{i}]", condition, channels)
        if self.style_dim:
            assert z is not None and z.shape == (conditions[-1].shape[0], self.style_dim), (
                f"VAE mode needs z [B, {self.style_dim}], got {None if z is None else tuple(z.shape)}"
            )
            grid = rearrange(self.head(z), "b (c h w) -> b c h w", h=STYLE_GRID, w=STYLE_GRID)  # [B, width_at(L), 4, 4]
            h = F.interpolate(grid, size=conditions[-1].shape[-2:], mode="nearest")  # [B, width_at(L), H/2**L, W/2**L]
        else:
            assert z is None, "z is for VAE mode (style_dim > 0) only"
            h = self.head(conditions[-1])  # [B, width_at(L), H/2**L, W/2**L]
        for i in range(self.num_scales, -1, -1):
            h = self.blocks[i](h, conditions[i])  # [B, width_at(i), H/2**i, W/2**i]
            if i > 0:
                h = F.interpolate(
                    h, size=conditions[i - 1].shape[-2:], mode="nearest"
                )  # [B, width_at(i), H/2**(i-1), .]
        return self.to_image(F.leaky_relu(h, 0.2)).tanh()  # [B, 3, H, W]
