import math

import pytest
import torch
from torch import nn

from egsynth.losses import (
    GENERATOR_TERMS,
    VGGPerceptualLoss,
    discriminator_objective,
    feature_matching_loss,
    gan_loss,
    generator_objective,
    gram_matrix,
    kl_loss,
    style_loss,
)

WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)


def outputs(*logit_values: float, features: torch.Tensor | None = None) -> list[list[torch.Tensor]]:
    """One discriminator per value: an intermediate feature then constant logits [2, 1, 3, 3]."""
    feature = torch.zeros(2, 4, 5, 5) if features is None else features
    return [[feature, torch.full((2, 1, 3, 3), value)] for value in logit_values]


# ----------------------------------------------------------------------------
# gan_loss


@pytest.mark.parametrize(
    ("value", "target_is_real", "expected"),
    [(2.0, True, 0.0), (-2.0, False, 0.0), (0.0, True, 1.0), (0.0, False, 1.0), (-1.0, True, 2.0), (0.5, False, 1.5)],
)
def test_hinge_discriminator_loss_on_hand_made_logits(value, target_is_real, expected):
    loss = gan_loss(outputs(value), target_is_real=target_is_real, for_discriminator=True)
    assert loss.item() == pytest.approx(expected)


def test_hinge_generator_loss_is_minus_the_mean_fake_logit():
    assert gan_loss(outputs(2.0), target_is_real=True, for_discriminator=False).item() == pytest.approx(-2.0)
    with pytest.raises(ValueError, match="target_is_real=True"):
        gan_loss(outputs(2.0), target_is_real=False, for_discriminator=False)


def test_gan_loss_averages_over_discriminators_using_the_last_output():
    logits = outputs(0.0, 2.0, features=torch.full((2, 4, 5, 5), 100.0))
    assert gan_loss(logits, target_is_real=True, for_discriminator=True).item() == pytest.approx(0.5)


@pytest.mark.parametrize("for_discriminator", [True, False])
def test_log_form_is_binary_cross_entropy_of_eq_11(for_discriminator):
    # -log sigmoid(x) for the real target, -log(1 - sigmoid(x)) for the fake one, averaged over discriminators
    real = gan_loss(outputs(0.0, 2.0), target_is_real=True, for_discriminator=for_discriminator, mode="log")
    fake = gan_loss(outputs(0.0, 2.0), target_is_real=False, for_discriminator=for_discriminator, mode="log")
    sigmoid_2 = 1 / (1 + math.exp(-2))
    assert real.item() == pytest.approx((math.log(2) - math.log(sigmoid_2)) / 2)
    assert fake.item() == pytest.approx((math.log(2) - math.log(1 - sigmoid_2)) / 2)


def test_log_generator_loss_is_non_saturating():
    """G's gradient stays large when D confidently rejects the fake (the -log D(x̂) form)."""
    logits = torch.full((2, 1, 3, 3), -8.0, requires_grad=True)
    gan_loss([[logits]], target_is_real=True, for_discriminator=False, mode="log").backward()
    assert logits.grad.abs().sum() == pytest.approx(1 - 1 / (1 + math.exp(8)), rel=1e-4)


def test_gan_loss_rejects_an_unknown_mode():
    with pytest.raises(ValueError, match="hinge"):
        gan_loss(outputs(0.0), target_is_real=True, for_discriminator=True, mode="wasserstein")


# ----------------------------------------------------------------------------
# feature matching, VGG, L_spade


def test_feature_matching_is_zero_for_identical_features():
    features = torch.randn(2, 4, 5, 5)
    assert feature_matching_loss(outputs(1.0, 3.0, features=features), outputs(0.0, 0.0, features=features)) == 0


def test_feature_matching_ignores_logits_sums_layers_and_averages_discriminators():
    fake = [[torch.ones(1, 2, 3, 3), torch.full((1, 2, 3, 3), 3.0), torch.full((1, 1, 2, 2), 50.0)]] * 2
    real = [[torch.zeros(1, 2, 3, 3), torch.zeros(1, 2, 3, 3), torch.zeros(1, 1, 2, 2)]] * 2
    assert feature_matching_loss(fake, real).item() == pytest.approx(1.0 + 3.0)


def test_feature_matching_does_not_backpropagate_into_real_features():
    fake = torch.randn(2, 4, 5, 5, requires_grad=True)
    real = torch.randn(2, 4, 5, 5, requires_grad=True)
    feature_matching_loss(outputs(0.0, features=fake), outputs(0.0, features=real)).backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0
    assert real.grad is None


def copies(image: torch.Tensor) -> list[torch.Tensor]:
    return [image] * 5


def test_vgg_loss_weights_the_five_layers_from_one_thirty_second_to_one():
    fake, real = torch.ones(1, 3, 4, 4), torch.zeros(1, 3, 4, 4)  # L1 of 1 on every layer
    assert VGGPerceptualLoss(layers=copies)(fake, real).item() == pytest.approx(sum(WEIGHTS))
    for index, weight in enumerate(WEIGHTS):

        def only(image, index=index):
            return [image if i == index else torch.zeros_like(image) for i in range(5)]

        assert VGGPerceptualLoss(layers=only)(fake * 2, real).item() == pytest.approx(2 * weight)


class TinyFrozenFeatures(nn.Module):
    """Five stacked random convs with ReLU, frozen: a stand-in for VGG-19's relu1_1 .. relu5_1."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.convs = nn.ModuleList(nn.Conv2d(3 if i == 0 else 4, 4, 3, padding=1) for i in range(5))
        self.requires_grad_(False)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for conv in self.convs:
            image = conv(image).relu()
            features.append(image)
        return features


def test_vgg_loss_is_zero_for_identical_images_and_positive_otherwise():
    loss = VGGPerceptualLoss(layers=TinyFrozenFeatures())
    image = torch.rand(2, 3, 8, 8) * 2 - 1
    other = torch.rand(2, 3, 8, 8) * 2 - 1
    assert loss(image, image).item() == 0
    fake = other.clone().requires_grad_(True)
    value = loss(fake, image)
    value.backward()
    assert value.item() > 0 and fake.grad.abs().sum() > 0


def test_l_spade_is_the_weighted_sum_of_feature_matching_and_vgg():
    fake_d = [[torch.ones(1, 2, 3, 3), torch.zeros(1, 1, 2, 2)]]
    real_d = [[torch.zeros(1, 2, 3, 3), torch.zeros(1, 1, 2, 2)]]
    fake, real = torch.ones(1, 3, 4, 4), torch.zeros(1, 3, 4, 4)
    perceptual = VGGPerceptualLoss(layers=copies)
    pieces = dict(discriminated=(fake_d, real_d), fake=fake, real=real)

    def l_spade(**kwargs) -> float:
        terms = generator_objective(**pieces, **kwargs)
        return (terms["g_feat"] + terms["g_vgg"]).item()

    assert l_spade(perceptual=perceptual) == pytest.approx(10 * 1 + 10 * sum(WEIGHTS))
    assert l_spade(perceptual=perceptual, lambda_feat=2.0, lambda_vgg=0.5) == pytest.approx(2 + 0.5 * sum(WEIGHTS))
    assert l_spade(perceptual=None) == pytest.approx(10.0)


def test_generator_objective_weights_every_term_by_the_task_and_its_lambda():
    fake_d, real_d = outputs(0.5, features=torch.ones(2, 4, 5, 5)), outputs(0.0)
    fake, real = torch.ones(2, 3, 4, 4), torch.zeros(2, 3, 4, 4)
    mu, logvar = torch.ones(2, 3), torch.zeros(2, 3)  # KL = 0.5 * 3 per sample
    terms = generator_objective(
        fake=fake,
        real=real,
        discriminated=(fake_d, real_d),
        perceptual=VGGPerceptualLoss(layers=copies),
        mu=mu,
        logvar=logvar,
        task_weight=0.5,
        lambda_feat=2.0,
        lambda_vgg=3.0,
        lambda_l1=4.0,
        lambda_kl=5.0,
    )
    assert list(terms) == list(GENERATOR_TERMS)
    expected = {"g_gan": -0.5, "g_feat": 2.0, "g_vgg": 3.0 * sum(WEIGHTS), "g_l1": 4.0, "g_kl": 5.0 * 2 * 1.5}
    assert {k: v.item() for k, v in terms.items()} == pytest.approx({k: 0.5 * v for k, v in expected.items()})


def test_a_warmup_generator_objective_without_d_has_only_the_l1_and_kl_terms():
    fake, real = torch.ones(2, 3, 4, 4), torch.zeros(2, 3, 4, 4)
    terms = generator_objective(
        fake=fake,
        real=real,
        discriminated=None,
        perceptual=VGGPerceptualLoss(layers=copies),
        mu=torch.ones(2, 3),
        logvar=torch.zeros(2, 3),
        lambda_l1=4.0,
        lambda_kl=1.0,
    )
    assert {k: v.item() for k, v in terms.items()} == {"g_gan": 0, "g_feat": 0, "g_vgg": 0, "g_l1": 4.0, "g_kl": 3.0}


def test_discriminator_objective_is_the_weighted_real_and_fake_terms():
    terms = discriminator_objective(discriminated=(outputs(0.5), outputs(-1.0)), task_weight=0.5)
    assert {k: v.item() for k, v in terms.items()} == pytest.approx({"d_real": 0.5 * 2.0, "d_fake": 0.5 * 1.5})


# ----------------------------------------------------------------------------
# Gram matrix and style loss


def test_gram_matrix_of_a_known_tensor():
    features = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 1, 2)  # C=2, H=1, W=2
    expected = torch.tensor([[[5.0, 11.0], [11.0, 25.0]]]) / (2 * 1 * 2)
    torch.testing.assert_close(gram_matrix(features), expected)


def test_style_loss_is_invariant_to_a_spatial_permutation_and_positive_for_another_image():
    torch.manual_seed(0)
    layers = [torch.randn(2, 4, 6, 5), torch.randn(2, 8, 3, 3)]
    permuted = []
    for features in layers:
        b, c, h, w = features.shape
        order = torch.randperm(h * w)
        permuted.append(features.reshape(b, c, h * w)[..., order].reshape(b, c, h, w))
    assert style_loss(permuted, layers).item() == pytest.approx(0.0, abs=1e-6)
    assert style_loss([torch.randn_like(f) * 2 for f in layers], layers).item() > 1e-3


def test_style_loss_sums_mse_of_grams_over_layers_and_trains_only_the_fake_side():
    fake = torch.ones(1, 1, 1, 2, requires_grad=True)  # Gram [[2 / 2]] = 1
    real = torch.zeros(1, 1, 1, 2, requires_grad=True)
    value = style_loss([fake, fake], [real, real])
    value.backward()
    assert value.item() == pytest.approx(2.0)
    assert fake.grad is not None and real.grad is None


# ----------------------------------------------------------------------------
# KL of the SPADE_VAE baseline


def test_kl_is_zero_for_the_standard_normal_and_positive_otherwise():
    zeros = torch.zeros(3, 8)
    assert kl_loss(zeros, zeros).item() == 0
    assert kl_loss(torch.full((3, 8), 0.5), zeros).item() > 0
    assert kl_loss(zeros, torch.full((3, 8), -1.0)).item() > 0


def test_kl_matches_the_closed_form_summed_over_dims_and_over_the_batch_as_spade():
    # one dimension: KL(N(mu, s^2) || N(0, 1)) = (mu^2 + s^2 - 1 - log s^2) / 2
    mu = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    logvar = torch.tensor([[0.0, math.log(2.0), 0.0], [0.0, 0.0, 0.0]])
    per_sample = [(1 + 1 - 1 - 0) / 2 + (0 + 2 - 1 - math.log(2.0)) / 2, 0.0]
    assert kl_loss(mu, logvar).item() == pytest.approx(sum(per_sample))


def test_kl_grows_with_the_batch_and_the_shards_of_a_ddp_batch_average_to_the_whole_batch_sum():
    mu, logvar = torch.randn(1, 5), torch.randn(1, 5)
    torch.testing.assert_close(kl_loss(mu.repeat(4, 1), logvar.repeat(4, 1)), 4 * kl_loss(mu, logvar))
    mu, logvar = torch.randn(6, 5), torch.randn(6, 5)
    shards = [kl_loss(mu[i : i + 2], logvar[i : i + 2], batch_size=6) for i in (0, 2, 4)]  # 3 ranks of 2
    torch.testing.assert_close(torch.stack(shards).mean(), kl_loss(mu, logvar))


def test_vgg_loss_rejects_a_layers_callable_with_the_wrong_depth():
    with pytest.raises(AssertionError, match="5 weights"):
        VGGPerceptualLoss(layers=lambda image: [image])(torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 2, 2))
