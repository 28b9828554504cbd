"""Training losses and the style metric: Eq. 11 (GAN + L_spade), Gatys' style loss, the VAE baseline's KL.

- `gan_loss`: the adversarial terms of Eq. 11, in the paper's log form (BCE with logits,
  non-saturating for G) or SPADE's hinge form, over a multiscale discriminator's outputs.
- `feature_matching_loss`, `VGGPerceptualLoss`: L_spade of Eq. 11, "the VGG and GAN feature matching
  losses defined in [38]".
- `generator_objective`, `discriminator_objective`: Eq. 11-12 for one task (cross or global), every term
  weighted as it enters L_G or L_D; the training loop (`egsynth.training.gan`) sums them over tasks.
- `gram_matrix`, `style_loss`: Gatys et al. [9], the L_style metric of Table 1 (also usable as a loss).
- `kl_loss`: the KL term of the SPADE_VAE baseline [38].

Every loss is a mean over the batch, so that a DDP step, which averages gradients over ranks, equals
the single-process step on the whole batch; the one sum, SPADE's KL over the batch, is written as the
global batch size times a mean for the same reason. Pure functions: no training loop here.

References: Park et al., SPADE [38]; Wang et al., pix2pixHD; Lim & Ye, Geometric GAN (hinge loss);
Gatys et al., "Image style transfer using convolutional neural networks" [9]; Kingma & Welling (VAE).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from einops import einsum, rearrange
from torch import Tensor, nn

VGG_LAYER_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)  # SPADE's weights of relu1_1 .. relu5_1

# ----------------------------------------------------------------------------
# adversarial terms of Eq. 11


def gan_loss(
    logits: list[list[Tensor]],
    *,
    target_is_real: bool,
    for_discriminator: bool,
    mode: Literal["hinge", "log"] = "hinge",
) -> Tensor:
    """An adversarial term of Eq. 11 over a multiscale discriminator's outputs.

    `logits` is `MultiscaleDiscriminator`'s output: per discriminator, its features with the patch
    logits last; only the last entry is used. The loss is the mean over patches and batch of each
    discriminator, averaged over discriminators.

    mode "log" (the paper's Eq. 11): BCE with logits against 1 (`target_is_real`) or 0, i.e.
    -log D(x) or -log(1 - D(x̂)) for D; for G call it with target_is_real=True on the fake logits,
    which is the non-saturating -log D(x̂) (Goodfellow et al.).
    mode "hinge" (SPADE's default): D: mean(relu(1 - real)) and mean(relu(1 + fake));
    G: -mean(fake), which needs target_is_real=True (there is no hinge G loss towards "fake").
    """
    assert len(logits) >= 1, "gan_loss needs the outputs of at least one discriminator"
    if mode not in ("hinge", "log"):
        raise ValueError(f"gan_loss mode must be 'hinge' or 'log', got {mode!r}")
    if mode == "hinge" and not for_discriminator and not target_is_real:
        raise ValueError("the hinge generator loss is -mean(D(fake)): call it with target_is_real=True")
    losses = []
    for outputs in logits:
        x = outputs[-1]  # [B, 1, h, w]
        if mode == "log":
            target = torch.ones_like(x) if target_is_real else torch.zeros_like(x)
            losses.append(F.binary_cross_entropy_with_logits(x, target))
        elif not for_discriminator:
            losses.append(-x.mean())
        elif target_is_real:
            losses.append(F.relu(1 - x).mean())
        else:
            losses.append(F.relu(1 + x).mean())
    return torch.stack(losses).mean()


# ----------------------------------------------------------------------------
# L_spade of Eq. 11


def feature_matching_loss(fake: list[list[Tensor]], real: list[list[Tensor]]) -> Tensor:
    """SPADE's (pix2pixHD's) discriminator feature matching loss, unweighted.

    Per discriminator, the sum over its intermediate features (all outputs but the logits) of the L1
    distance (mean over elements) between fake and real features; then the sum over discriminators
    divided by their number. Real features are detached: the loss only trains G.
    The caller applies lambda_feat (SPADE: 10), as `generator_objective` does.
    """
    assert len(fake) == len(real) >= 1, f"got {len(fake)} fake and {len(real)} real discriminator outputs"
    total = fake[0][0].new_zeros(())
    for fake_outputs, real_outputs in zip(fake, real, strict=True):
        assert len(fake_outputs) == len(real_outputs), "fake and real discriminators have different depths"
        for f, r in zip(fake_outputs[:-1], real_outputs[:-1], strict=True):
            total = total + F.l1_loss(f, r.detach())
    return total / len(fake)


class VGGPerceptualLoss(nn.Module):
    """SPADE's VGG loss: sum_l w_l * L1(phi_l(x̂), phi_l(x)) with w = 1/32, 1/16, 1/8, 1/4, 1.

    phi_l are relu1_1 .. relu5_1 of a frozen VGG-19, injected as `layers` (e.g.
    `egsynth.models.features.VGGFeatures.perceptual_layers`), so tests can pass a tiny stand-in.
    The real image's features are computed without gradient (they are targets).
    """

    def __init__(
        self,
        *,
        layers: Callable[[Tensor], list[Tensor]],  # image [B, 3, H, W] in [-1, 1] -> features, shallow first
        weights: Sequence[float] = VGG_LAYER_WEIGHTS,  # one weight per feature of `layers`
    ) -> None:
        super().__init__()
        self.layers = layers  # registered as a submodule when it is an nn.Module (moves with .to())
        self.weights = tuple(weights)

    def forward(self, fake: Tensor, real: Tensor) -> Tensor:
        """fake, real [B, 3, H, W] in [-1, 1] -> scalar."""
        assert fake.shape == real.shape, f"fake {tuple(fake.shape)} and real {tuple(real.shape)} differ"
        fake_features = self.layers(fake)
        with torch.no_grad():
            real_features = self.layers(real)
        assert len(fake_features) == len(self.weights), (
            f"`layers` returned {len(fake_features)} features for {len(self.weights)} weights"
        )
        total = fake.new_zeros(())
        for weight, f, r in zip(self.weights, fake_features, real_features, strict=True):
            total = total + weight * F.l1_loss(f, r)
        return total


# ----------------------------------------------------------------------------
# the objectives of Eq. 11-12, one task at a time

GENERATOR_TERMS = ("g_gan", "g_feat", "g_vgg", "g_l1", "g_kl")
"""G's weighted terms, in the order they are summed: adversarial, L_spade's two, pixel L1, the VAE's KL."""
DISCRIMINATOR_TERMS = ("d_real", "d_fake")

DiscriminatorOutputs = list[list[Tensor]]  # per discriminator: its features, the patch logits last


def generator_objective(
    *,
    fake: Tensor,  # x̂ [B, 3, H, W]: G's output for this task
    real: Tensor,  # x [B, 3, H, W]: the image G should have painted
    discriminated: tuple[DiscriminatorOutputs, DiscriminatorOutputs] | None,  # D on (x̂, conds), on (x, conds);
    #   None: a warm-up iteration, no D, so no adversarial, feature matching or VGG term
    perceptual: VGGPerceptualLoss | None,  # the VGG term of L_spade; None: none (as lambda_vgg = 0)
    mu: Tensor | None = None,  # the VAE style encoder's posterior [B, D] (spade_vae); None: no KL term
    logvar: Tensor | None = None,
    task_weight: float = 1.0,  # 1 for the cross task (Eq. 9), λ = lambda_global for global self-reconstruction
    mode: Literal["hinge", "log"] = "hinge",  # the adversarial form, as in `gan_loss`
    lambda_feat: float = 10.0,  # feature matching in L_spade (SPADE: 10)
    lambda_vgg: float = 10.0,  # VGG perceptual loss in L_spade (SPADE: 10)
    lambda_l1: float = 0.0,  # pixel L1, not in the paper (0 there)
    lambda_kl: float = 0.0,  # KL of the spade_vae baseline, on the KL summed over the batch (SPADE: 0.05)
    batch_size: int | None = None,  # the global batch the KL sums over (DDP: all ranks'); None: this batch
) -> dict[str, Tensor]:
    """G's side of Eq. 11 for one task: adv_G(D(x̂, ...)) + L_spade(x̂, x), plus pixel L1 and KL.

    Returns every term of `GENERATOR_TERMS` already weighted (task weight and its lambda), so their sum is
    the task's contribution to L_G; a term that is off is a zero. L_spade (SPADE [38]) is lambda_feat *
    feature matching + lambda_vgg * VGG perceptual loss.
    """
    terms = dict.fromkeys(GENERATOR_TERMS, fake.new_zeros(()))
    if discriminated is not None:
        fake_outputs, real_outputs = discriminated
        terms["g_gan"] = task_weight * gan_loss(fake_outputs, target_is_real=True, for_discriminator=False, mode=mode)
        terms["g_feat"] = task_weight * lambda_feat * feature_matching_loss(fake_outputs, real_outputs)
        if perceptual is not None and lambda_vgg > 0:
            terms["g_vgg"] = task_weight * lambda_vgg * perceptual(fake, real)
    if lambda_l1 > 0:
        terms["g_l1"] = task_weight * lambda_l1 * F.l1_loss(fake, real)
    if mu is not None and logvar is not None and lambda_kl > 0:
        terms["g_kl"] = task_weight * lambda_kl * kl_loss(mu, logvar, batch_size=batch_size)
    return terms


def discriminator_objective(
    *,
    discriminated: tuple[DiscriminatorOutputs, DiscriminatorOutputs],  # D on (x̂ detached, conds), on (x, conds)
    task_weight: float = 1.0,  # 1 for the cross task, λ = lambda_global for global self-reconstruction
    mode: Literal["hinge", "log"] = "hinge",  # the adversarial form, as in `gan_loss`
) -> dict[str, Tensor]:
    """D's side of Eq. 11-12 for one task: the real and the fake adversarial terms, weighted by the task."""
    fake_outputs, real_outputs = discriminated
    return {
        "d_real": task_weight * gan_loss(real_outputs, target_is_real=True, for_discriminator=True, mode=mode),
        "d_fake": task_weight * gan_loss(fake_outputs, target_is_real=False, for_discriminator=True, mode=mode),
    }


# ----------------------------------------------------------------------------
# style (Table 1's L_style [9])


def gram_matrix(features: Tensor) -> Tensor:
    """Gatys' Gram matrix G_cd = sum_p F_cp F_dp / (C H W) of features [B, C, H, W] -> [B, C, C]."""
    assert features.dim() == 4, f"gram_matrix expects [B, C, H, W], got {tuple(features.shape)}"
    _, c, h, w = features.shape
    flat = rearrange(features, "b c h w -> b c (h w)")  # [B, C, H*W]
    return einsum(flat, flat, "b c n, b d n -> b c d") / (c * h * w)  # [B, C, C]


def style_loss(layers_fake: list[Tensor], layers_real: list[Tensor], *, per_image: bool = False) -> Tensor:
    """Sum over layers of the MSE (mean over batch and C x C entries) between Gram matrices [9]; with
    `per_image`, that sum for each image pair alone -> [B] (Table 1's metric, `metrics.style_distance`).

    As a metric (Table 1) call it under `torch.no_grad()` with VGG features of the synthesized and
    ground-truth images; as a loss the real side is detached (a fixed style target). Each layer's Gram
    matrices of the whole batch come from one product, also per image.
    """
    assert len(layers_fake) == len(layers_real) >= 1, "style_loss needs as many fake as real feature maps"
    grams = [(gram_matrix(f), gram_matrix(r.detach())) for f, r in zip(layers_fake, layers_real, strict=True)]
    zero = layers_fake[0].new_zeros(())
    if per_image:
        pairs = range(layers_fake[0].shape[0])
        return torch.stack([sum((F.mse_loss(fake[i], real[i]) for fake, real in grams), start=zero) for i in pairs])
    return sum((F.mse_loss(fake, real) for fake, real in grams), start=zero)


# ----------------------------------------------------------------------------
# SPADE_VAE baseline


def kl_loss(mu: Tensor, logvar: Tensor, *, batch_size: int | None = None) -> Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) = -0.5 * sum(1 + logvar - mu^2 - exp(logvar)), SPADE's KLDLoss.

    Summed over the latent dimensions and over the batch (mu, logvar [B, D]), as SPADE sums it before
    weighting it by lambda_kld = 0.05. Under DDP each rank holds a shard of the global batch and the
    gradients are averaged over ranks, so the sum over the global batch is computed as `batch_size`
    (the global batch size) times the shard's mean; None takes this batch's size, a plain sum.
    """
    assert mu.shape == logvar.shape and mu.dim() >= 1, f"mu {tuple(mu.shape)} and logvar {tuple(logvar.shape)}"
    per_sample = rearrange(1 + logvar - mu.pow(2) - logvar.exp(), "b ... -> b (...)")  # [B, D]
    samples = mu.shape[0] if batch_size is None else batch_size
    return -0.5 * per_sample.sum(dim=1).mean() * samples
