from pathlib import Path

import pytest
import torch

from egsynth.config import ModelConfig, load_params
from egsynth.models.generator import build_generator, load_generator, parameter_counts, save_generator
from egsynth.models.manipulation import (
    extrapolate,
    extrapolation_positions,
    horizontal_ramp,
    interpolate,
    interpolate_spatial,
)
from egsynth.models.variants import VARIANTS

DEFAULT_PARAMS = load_params(Path(__file__).resolve().parents[1] / "params.yaml")
DEFAULT = DEFAULT_PARAMS.model
DEFAULT_SIZES = (DEFAULT_PARAMS.manifest.patch_size, DEFAULT_PARAMS.manifest.image_size)
"""What the default pipeline feeds G: phase-1 patches and phase-2 global images."""
TINY = ModelConfig(
    num_scales=2,
    attention_maps=(2, 3, 3),
    image_channels=6,
    label_channels=5,
    style_dim=4,
    ngf=4,
    dense_attention_side=8,
)
TINY_CLASSES = 5


def one_hot(batch: int, classes: int, height: int, width: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    # blocky labels, so that every scale sees several classes
    coarse = torch.randint(0, classes, (batch, 1, max(1, height // 8), max(1, width // 8)), generator=generator)
    ids = torch.nn.functional.interpolate(coarse.float(), size=(height, width), mode="nearest").long()[:, 0]
    return torch.nn.functional.one_hot(ids, classes).permute(0, 3, 1, 2).float()


def inputs(classes: int, size: int, seed: int = 0, exemplar_size: int | None = None):
    exemplar_size = exemplar_size or size
    generator = torch.Generator().manual_seed(seed)
    x2 = torch.rand(1, 3, exemplar_size, exemplar_size, generator=generator) * 2 - 1
    return one_hot(1, classes, size, size, seed), x2, one_hot(1, classes, exemplar_size, exemplar_size, seed + 1)


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("size", DEFAULT_SIZES)
def test_every_variant_runs_forward_and_backward_at_the_default_config(variant, size):
    generator = build_generator(variant, DEFAULT)
    c1, x2, _ = inputs(171, size)
    output = generator(c1, x2, c1)  # the exemplar has the target's classes, so label-pooling variants use it too
    assert output.image.shape == (1, 3, size, size)
    assert output.image.abs().max() <= 1
    output.image.mean().backward()
    trainable = [p for p in generator.parameters() if p.requires_grad]
    assert sum(p.grad is not None and p.grad.abs().sum() > 0 for p in trainable) > 0.8 * len(trainable)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_exemplar_and_target_may_differ_in_size(variant):
    generator = build_generator(variant, TINY, num_classes=TINY_CLASSES).eval()
    c1, x2, c2 = inputs(TINY_CLASSES, 32, exemplar_size=48)
    assert generator(c1, x2, c2).image.shape == (1, 3, 32, 32)


def test_the_same_seed_builds_the_same_weights_and_another_seed_does_not():
    first, second = (
        build_generator("full", TINY, num_classes=TINY_CLASSES),
        build_generator("full", TINY, num_classes=TINY_CLASSES),
    )
    other = build_generator("full", TINY.model_copy(update={"seed": 1}), num_classes=TINY_CLASSES)
    pairs = zip(first.state_dict().values(), second.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    assert not all(
        torch.equal(a, b) for a, b in zip(first.state_dict().values(), other.state_dict().values(), strict=True)
    )


def test_unknown_variant_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown generator variant 'fancy'"):
        build_generator("fancy", TINY, num_classes=TINY_CLASSES)


def test_spade_vae_takes_the_exemplar_only_through_its_style_code(monkeypatch):
    """SPADE's VAE mode: x2 -> (mu, logvar) -> z -> fc -> the first feature map; c̃2 is not read."""
    generator = build_generator("spade_vae", TINY, num_classes=TINY_CLASSES).eval()
    assert not hasattr(generator, "aligners") and not hasattr(generator, "image_encoder")
    assert generator.synthesis.condition_channels == [TINY.label_channels] * (TINY.num_scales + 1)
    c1, x2, c2 = inputs(TINY_CLASSES, 32, seed=0)
    _, x3, c3 = inputs(TINY_CLASSES, 32, seed=5)
    with torch.no_grad():
        first, second = generator(c1, x2, c2), generator(c1, x3, c3)
        assert (first.image - second.image).abs().mean() > 1e-4, "another exemplar, another style code"
        torch.testing.assert_close(generator(c1, x2, c3).image, first.image)  # the parsed labels play no part
        code = generator.style_encoder(x2)
        monkeypatch.setattr(generator.style_encoder, "forward", lambda image: code)
        torch.testing.assert_close(generator(c1, x3, c3).image, first.image)  # the same z, the same image


def test_no_fm_differs_from_full_only_by_the_gate():
    full = build_generator("full", TINY, num_classes=TINY_CLASSES).eval()
    no_fm = build_generator("no_fm", TINY, num_classes=TINY_CLASSES).eval()
    no_fm.load_state_dict(full.state_dict())
    c1, x2, c2 = inputs(TINY_CLASSES, 32)
    records_full, records_no_fm = full(c1, x2, c2).attention, no_fm(c1, x2, c2).attention
    assert all(
        torch.equal(a.alpha, b.alpha) and torch.equal(a.beta, b.beta)
        for a, b in zip(records_full, records_no_fm, strict=True)
    )
    assert all((r.gate < 1).all() for r in records_full)
    assert all(torch.equal(r.gate, torch.ones_like(r.gate)) for r in records_no_fm)


def test_interpolation_starts_at_the_first_exemplars_output_and_ends_at_the_seconds():
    generator = build_generator("full", TINY, num_classes=TINY_CLASSES).eval()
    c1, x_first, c_first = inputs(TINY_CLASSES, 32, seed=0)
    _, x_second, c_second = inputs(TINY_CLASSES, 32, seed=5)
    first, second = (x_first, c_first), (x_second, c_second)
    with torch.no_grad():
        alone_first, alone_second = generator(c1, *first).image, generator(c1, *second).image
        assert torch.allclose(interpolate(generator, c1, first, second, 0.0), alone_first, atol=1e-5)
        assert torch.allclose(interpolate(generator, c1, first, second, 1.0), alone_second, atol=1e-5)
        halfway = interpolate(generator, c1, first, second, 0.5)
    assert not torch.allclose(halfway, alone_first, atol=1e-4) and not torch.allclose(halfway, alone_second, atol=1e-4)


def test_interpolation_refuses_variants_without_msca():
    generator = build_generator("gap", TINY, num_classes=TINY_CLASSES).eval()
    c1, x2, c2 = inputs(TINY_CLASSES, 32)
    with pytest.raises(ValueError, match="needs MSCA attention"):
        interpolate(generator, c1, (x2, c2), (x2, c2), 0.5)


def test_spatial_interpolation_with_constant_weights_is_one_exemplar_and_a_ramp_mixes_left_to_right():
    generator = build_generator("full", TINY, num_classes=TINY_CLASSES).eval()
    c1, x2, c2 = inputs(TINY_CLASSES, 32, seed=0)
    _, x3, c3 = inputs(TINY_CLASSES, 32, seed=5)
    with torch.no_grad():
        alone_2, alone_3 = generator(c1, x2, c2).image, generator(c1, x3, c3).image
        assert torch.allclose(
            interpolate_spatial(generator, c1, (x2, c2), (x3, c3), torch.ones(1, 1, 32, 32)), alone_2, atol=1e-5
        )
        ramp = interpolate_spatial(generator, c1, (x2, c2), (x3, c3), horizontal_ramp(32, 32))
    left, right = ramp[..., :, :6], ramp[..., :, -6:]
    assert (left - alone_2[..., :, :6]).abs().mean() < (left - alone_3[..., :, :6]).abs().mean()
    assert (right - alone_3[..., :, -6:]).abs().mean() < (right - alone_2[..., :, -6:]).abs().mean()


def test_extrapolation_covers_the_map_and_a_patch_as_large_as_the_map_is_plain_synthesis():
    positions = extrapolation_positions(64, 96, 32, num_random=3, seed=0)
    covered = torch.zeros(64, 96, dtype=torch.bool)
    for top, left in positions:
        covered[top : top + 32, left : left + 32] = True
    assert covered.all() and {(0, 0), (0, 64), (32, 0), (32, 64)} <= set(positions)
    generator = build_generator("full", TINY, num_classes=TINY_CLASSES).eval()
    c1, x2, c2 = inputs(TINY_CLASSES, 32)
    with torch.no_grad():
        assert torch.allclose(
            extrapolate(generator, c1, (x2, c2), patch=32, num_random=2), generator(c1, x2, c2).image, atol=1e-6
        )
        large = extrapolate(generator, one_hot(1, TINY_CLASSES, 64, 96, 3), (x2, c2), patch=32)
    assert large.shape == (1, 3, 64, 96) and large.abs().max() <= 1


def test_parameter_counts_add_up():
    for variant in VARIANTS:
        counts = parameter_counts(build_generator(variant, TINY, num_classes=TINY_CLASSES))
        parts = sum(v for k, v in counts.items() if k not in ("total trainable", "vgg19 (frozen)"))
        assert parts == counts["total trainable"] > 0, variant


def test_a_saved_generator_reloads_with_identical_outputs_without_storing_the_frozen_vgg(tmp_path):
    generator = build_generator("full", TINY.model_copy(update={"seed": 4}), num_classes=TINY_CLASSES).eval()
    save_generator(generator, TINY.model_copy(update={"seed": 4}), tmp_path / "g.pt", num_classes=TINY_CLASSES)
    stored = torch.load(tmp_path / "g.pt", weights_only=True)
    assert not any(key.startswith("image_encoder.vgg.") for key in stored["state_dict"])
    reloaded = load_generator(tmp_path / "g.pt")
    c1, x2, c2 = inputs(TINY_CLASSES, 32)
    with torch.no_grad():
        assert torch.equal(reloaded(c1, x2, c2).image, generator(c1, x2, c2).image)


def test_a_per_scale_attention_label_init_leaves_the_zero_scales_at_the_default_init():
    config = ModelConfig(
        num_scales=2, attention_maps=[4, 4, 4], attention_labels=True, attention_label_init=[5.0, 0.0, 0.0], ngf=8
    )
    generator = build_generator("full", config, num_classes=6)
    class_weights = [float(aligner.spatial.weight[:, -6:].std()) for aligner in generator.aligners]
    assert class_weights[0] > 3.0, "the tied class preferences, std 5"
    assert max(class_weights[1:]) < 0.5, "the default conv init"
    tied = generator.aligners[0]
    assert torch.equal(tied.spatial.weight[:, -6:], tied.channel.weight[:, -6:]), "φ and ψ share them"


def test_attention_classes_become_one_hot_preferences_at_every_scale_and_unknown_names_are_refused():
    config = ModelConfig(
        num_scales=2,
        attention_maps=[4, 4, 4],
        attention_labels=True,
        attention_label_init=5.0,
        attention_classes=["person", "bicycle"],
        ngf=8,
    )
    generator = build_generator("full", config, num_classes=6)  # person and bicycle: class indices 0 and 1
    expected = torch.zeros(4, 6)
    expected[0, 0] = expected[1, 1] = 5.0
    for aligner in generator.aligners:
        assert torch.equal(aligner.spatial.weight[:, -6:, 0, 0], expected)
        assert torch.equal(aligner.channel.weight[:, -6:, 0, 0], expected)
    with pytest.raises(ValueError, match="no COCO-stuff class named 'skyy'"):
        build_generator("full", config.model_copy(update={"attention_classes": ["person", "skyy"]}), num_classes=6)


@pytest.mark.parametrize("variant", ["full", "gap"])
def test_image_colors_give_w_x_the_exemplars_rgb_and_a_saved_generator_keeps_them(variant, tmp_path):
    config = ModelConfig(num_scales=2, attention_maps=[4, 4, 4], image_colors=True, ngf=8)
    generator = build_generator(variant, config, num_classes=6)
    vgg_channels = generator.image_encoder.vgg.channels
    assert [w_x.in_channels for w_x in generator.image_encoder.projections] == [c + 3 for c in vgg_channels]
    save_generator(generator, config, tmp_path / "g.pt", num_classes=6)
    reloaded = load_generator(tmp_path / "g.pt")
    c1, x2, c2 = inputs(6, 32)
    with torch.no_grad():
        assert torch.equal(reloaded(c1, x2, c2).image, generator.eval()(c1, x2, c2).image)
