import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from egsynth.models.spade import SPADE, SPADEResBlock, SynthesisNetwork, width_at


def zero_modulation(spade: SPADE) -> None:
    for conv in (spade.gamma, spade.beta):
        nn.init.zeros_(conv.weight)
        nn.init.zeros_(conv.bias)


@pytest.mark.parametrize("norm", ["instance", "batch"])
def test_spade_with_zero_gamma_and_beta_is_the_parameter_free_norm(norm):
    torch.manual_seed(0)
    spade = SPADE(channels=4, condition_channels=5, hidden=8, norm=norm)
    zero_modulation(spade)
    x = torch.randn(3, 4, 6, 7) * 3 + 1
    out = spade(x, torch.randn(3, 5, 6, 7))
    if norm == "instance":
        expected = F.instance_norm(x)
    else:
        expected = F.batch_norm(x, None, None, training=True)
    torch.testing.assert_close(out, expected)


def test_spade_condition_acts_locally():
    """A condition changed only in its left half changes the output only within conv reach of that half."""
    torch.manual_seed(0)
    spade = SPADE(channels=4, condition_channels=3, hidden=8, norm="instance")
    x = torch.randn(2, 4, 12, 16)
    condition = torch.randn(2, 3, 12, 16)
    changed = condition.clone()
    changed[..., :8] = torch.randn(2, 3, 12, 8)
    with torch.no_grad():
        difference = (spade(x, condition) - spade(x, changed)).abs()
    reach = 2  # two stacked 3x3 convs: shared, then gamma / beta
    assert difference[..., :8].amax() > 1e-3
    assert difference[..., 8 + reach :].amax() == 0


def test_spade_resizes_a_smaller_condition_bilinearly():
    torch.manual_seed(0)
    spade = SPADE(channels=2, condition_channels=3, hidden=4)
    x, condition = torch.randn(1, 2, 8, 10), torch.randn(1, 3, 4, 5)
    resized = F.interpolate(condition, size=(8, 10), mode="bilinear", align_corners=False)
    torch.testing.assert_close(spade(x, condition), spade(x, resized))


def test_spade_norm_is_selectable():
    assert isinstance(SPADE(channels=2, condition_channels=1, norm="instance").norm, nn.InstanceNorm2d)
    assert isinstance(SPADE(channels=2, condition_channels=1, norm="batch").norm, nn.BatchNorm2d)
    with pytest.raises(ValueError, match="instance"):
        SPADE(channels=2, condition_channels=1, norm="group")


@pytest.mark.parametrize(("norm", "batch_independent"), [("instance", True), ("batch", False)])
def test_instance_norm_is_batch_independent_and_batch_norm_is_not(norm, batch_independent):
    torch.manual_seed(0)
    # no spectral norm: its power iteration updates its estimate at every training-mode forward
    block = SPADEResBlock(in_channels=4, out_channels=6, condition_channels=3, norm=norm, hidden=8, spectral=False)
    x, condition = torch.randn(2, 4, 8, 8), torch.randn(2, 3, 8, 8)
    other = x.clone()
    other[1] = torch.randn(4, 8, 8) * 5
    with torch.no_grad():
        first, second = block(x, condition)[0], block(other, condition)[0]
    assert torch.equal(first, second) == batch_independent


def test_res_block_shortcut_is_learned_only_when_widths_differ():
    same = SPADEResBlock(in_channels=4, out_channels=4, condition_channels=3, norm="instance", hidden=4)
    changed = SPADEResBlock(in_channels=4, out_channels=2, condition_channels=3, norm="instance", hidden=4)
    assert not same.learned_shortcut and not hasattr(same, "conv_s")
    assert changed.learned_shortcut
    assert changed(torch.randn(1, 4, 5, 5), torch.randn(1, 3, 5, 5)).shape == (1, 2, 5, 5)


def test_res_block_convs_are_spectrally_normalized():
    block = SPADEResBlock(in_channels=4, out_channels=2, condition_channels=3, norm="instance", hidden=4)
    for conv in (block.conv_0, block.conv_1, block.conv_s):
        assert nn.utils.parametrize.is_parametrized(conv, "weight")
    plain = SPADEResBlock(in_channels=4, out_channels=2, condition_channels=3, norm="instance", spectral=False)
    assert not nn.utils.parametrize.is_parametrized(plain.conv_0, "weight")


def test_width_doubles_per_scale_up_to_eight_ngf():
    assert [width_at(i, 16) for i in range(6)] == [16, 32, 64, 128, 128, 128]


def conditions_for(height: int, width: int, channels: list[int], batch: int = 2) -> list[torch.Tensor]:
    return [torch.randn(batch, c, math.ceil(height / 2**i), math.ceil(width / 2**i)) for i, c in enumerate(channels)]


@pytest.mark.parametrize("num_scales", [0, 1, 2, 3, 4])
def test_synthesis_gives_an_image_in_range_at_the_finest_size_for_odd_sizes(num_scales):
    torch.manual_seed(num_scales)
    channels = [5 + i for i in range(num_scales + 1)]
    network = SynthesisNetwork(condition_channels=channels, ngf=2, norm="instance", hidden=4)
    with torch.no_grad():
        image = network(conditions_for(72, 40, channels))
    assert image.shape == (2, 3, 72, 40)
    assert image.min() >= -1 and image.max() <= 1


def test_synthesis_gradients_reach_every_spade_modulation():
    torch.manual_seed(0)
    channels = [3, 4, 5]
    network = SynthesisNetwork(condition_channels=channels, ngf=2, norm="batch", hidden=4)
    network(conditions_for(20, 12, channels)).square().sum().backward()
    spades = [m for m in network.modules() if isinstance(m, SPADE)]
    assert len(spades) == 3 * 2 + 2  # two per block, plus the shortcut SPADE of the blocks that change width
    for spade in spades:
        for conv in (spade.gamma, spade.beta):
            assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0


def test_synthesis_rejects_a_condition_of_the_wrong_width():
    network = SynthesisNetwork(condition_channels=[3, 4], ngf=2, norm="instance", hidden=4)
    with pytest.raises(AssertionError, match=r"conditions\[1\]"):
        network([torch.randn(1, 3, 8, 8), torch.randn(1, 5, 4, 4)])


def test_vae_mode_starts_from_the_style_code_through_a_linear_layer_for_any_size():
    """SPADE's `use_vae`: the first feature map is fc(z); the conditions only modulate it."""
    torch.manual_seed(0)
    channels = [3, 4, 5]
    network = SynthesisNetwork(condition_channels=channels, ngf=2, norm="instance", hidden=4, style_dim=6).eval()
    assert isinstance(network.head, nn.Linear) and network.head.in_features == 6
    conditions = conditions_for(36, 20, channels)
    z, other = torch.randn(2, 6), torch.randn(2, 6)
    with torch.no_grad():
        image = network(conditions, z=z)
        assert image.shape == (2, 3, 36, 20) and image.abs().max() <= 1
        torch.testing.assert_close(network(conditions, z=z), image)
        assert (network(conditions, z=other) - image).abs().mean() > 1e-4, "the style code changes the image"
        assert network(conditions_for(8, 8, channels), z=z).shape == (2, 3, 8, 8), "coarsest 2 x 2 < the grid"
    with pytest.raises(AssertionError, match="VAE mode needs z"):
        network(conditions)
    with pytest.raises(AssertionError, match="z is for VAE mode"):
        SynthesisNetwork(condition_channels=channels, ngf=2, hidden=4)(conditions, z=z)
