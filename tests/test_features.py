"""Feature extraction (Eq. 1-3) and the VGG-19 weight policy (docs/design.md, "Pretrained networks, offline")."""

import time
import urllib.request

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange, reduce

from egsynth.models.features import (
    IMAGENET_MEAN,
    BackboneWeightsInvalid,
    BackboneWeightsMissing,
    ImageEncoder,
    LabelEncoder,
    VGGFeatures,
    backbone_label,
    load_vgg19,
    resize_labels,
)

IMAGENET_FILE = "vgg19-dcbb9e9d.pth"
IMAGENET_URL = "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth"


def one_hot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    return rearrange(F.one_hot(labels, num_classes).float(), "b h w c -> b c h w")


def random_labels(batch: int, num_classes: int, height: int, width: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return one_hot(torch.randint(0, num_classes, (batch, height, width), generator=generator), num_classes)


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module")
def vgg() -> VGGFeatures:
    return VGGFeatures(backbone="random", seed=0, num_scales=4)


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    """An empty torch hub directory, and any download attempt fails the test."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)

    def no_network(*args, **kwargs):
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    return tmp_path / "torch" / "hub" / "checkpoints"


# ---------------------------------------------------------------------------------------------
# VGG-19 weights


def test_imagenet_backbone_absent_offline_names_file_and_url_promptly_without_download(empty_hub):
    start = time.perf_counter()
    with pytest.raises(BackboneWeightsMissing) as error:
        load_vgg19("imagenet", seed=0)
    assert time.perf_counter() - start < 5
    message = str(error.value)
    assert "\n" not in message
    assert str(empty_hub / IMAGENET_FILE) in message
    assert IMAGENET_URL in message
    assert "model.backbone: <path" in message and "random" in message
    assert isinstance(error.value, FileNotFoundError)
    assert error.value.filename == str(empty_hub / IMAGENET_FILE)


def test_imagenet_backbone_loads_torchvisions_file_from_the_hub_cache(empty_hub):
    reference = load_vgg19("random", seed=5)
    empty_hub.mkdir(parents=True)
    whole_model = {f"features.{k}": v for k, v in reference.state_dict().items()}
    whole_model["classifier.0.weight"] = torch.zeros(2, 2)  # torchvision's file holds the whole VGG
    torch.save(whole_model, empty_hub / IMAGENET_FILE)
    assert same_weights(load_vgg19("imagenet", seed=0), reference)


def test_random_backbone_is_a_function_of_its_seed_and_leaves_global_rng_alone():
    torch.manual_seed(1)
    rng_state = torch.get_rng_state()
    first = load_vgg19("random", seed=7)
    assert torch.equal(torch.get_rng_state(), rng_state), "the global RNG was consumed"
    torch.manual_seed(12345)
    assert same_weights(load_vgg19("random", seed=7), first)
    assert not same_weights(load_vgg19("random", seed=8), first)


def test_state_dict_file_backbone_loads_exactly(tmp_path):
    reference = load_vgg19("random", seed=3)
    path = tmp_path / "vgg.pt"
    torch.save(reference.state_dict(), path)
    assert same_weights(load_vgg19(str(path), seed=0), reference)
    assert backbone_label(str(path)) == "vgg19-file:vgg.pt"


def test_missing_or_mismatched_backbone_file_is_named(tmp_path):
    missing = tmp_path / "absent.pth"
    with pytest.raises(BackboneWeightsMissing, match=str(missing)):
        load_vgg19(str(missing), seed=0)
    wrong = tmp_path / "wrong.pth"
    torch.save(torch.nn.Conv2d(3, 8, 3).state_dict(), wrong)
    with pytest.raises(BackboneWeightsInvalid, match=str(wrong)):
        load_vgg19(str(wrong), seed=0)


def test_backbone_labels_say_which_weights():
    assert backbone_label("imagenet") == "vgg19-imagenet"
    assert backbone_label("random") == "vgg19-random"
    assert backbone_label("/data/weights/my_vgg.pth") == "vgg19-file:my_vgg.pth"


# ---------------------------------------------------------------------------------------------
# VGGFeatures, ImageEncoder


def test_vgg_features_give_one_map_per_scale_at_halving_resolution(vgg):
    image = torch.rand(2, 3, 48, 64) * 2 - 1
    features = vgg(image)
    assert [tuple(f.shape) for f in features] == [(2, c, 48 >> i, 64 >> i) for i, c in enumerate(vgg.channels)]
    assert vgg.channels == [64, 128, 256, 512, 512]
    perceptual = vgg.perceptual_layers(image)
    assert [tuple(f.shape[1:]) for f in perceptual] == [(c, 48 >> i, 64 >> i) for i, c in enumerate(vgg.channels)]
    coarse = VGGFeatures(backbone="random", seed=0, num_scales=1)
    assert len(coarse(image)) == 2 and len(coarse.perceptual_layers(image)) == 5


def test_vgg_features_are_frozen_and_stay_in_eval_mode(vgg):
    vgg.train()
    assert not vgg.training and not any(m.training for m in vgg.modules())
    assert not any(p.requires_grad for p in vgg.parameters())
    image = (torch.rand(1, 3, 32, 32) * 2 - 1).requires_grad_()
    sum(f.mean() for f in vgg.perceptual_layers(image)).backward()
    assert image.grad is not None and image.grad.abs().sum() > 0, "the perceptual loss needs input gradients"
    assert all(p.grad is None for p in vgg.parameters())


def test_vgg_input_in_minus_one_one_is_normalized_by_imagenet_statistics(vgg):
    mean_image = rearrange(torch.tensor(IMAGENET_MEAN) * 2 - 1, "c -> 1 c 1 1").expand(1, 3, 16, 16)
    relu1_1 = vgg.perceptual_layers(mean_image)[0]
    assert torch.allclose(relu1_1, torch.zeros_like(relu1_1), atol=1e-5)  # zero input, zero bias (random init)


def test_image_encoder_gradients_reach_every_w_x_but_not_vgg(vgg):
    encoder = ImageEncoder(vgg=vgg, image_channels=8)
    features = encoder(torch.rand(2, 3, 32, 32) * 2 - 1)
    assert [tuple(f.shape) for f in features] == [(2, 8, 32 >> i, 32 >> i) for i in range(5)]
    sum((f * torch.randn_like(f)).sum() for f in features).backward()
    for w_x in encoder.projections:
        assert w_x.weight.grad is not None and w_x.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in vgg.parameters())


def test_image_encoder_with_colors_reads_the_images_area_mean_at_each_scale(vgg):
    """colors: W_x^(i) * [F_vgg^(i)(x), x^(i)]; with the VGG half of W_x zeroed, F_x^(i) is a 1x1 conv of the
    image averaged over each 2^i x 2^i cell, the cells of VGG's pooling at scale i."""
    encoder = ImageEncoder(vgg=vgg, image_channels=4, colors=True)
    image = torch.rand(1, 3, 32, 48) * 2 - 1
    with torch.no_grad():
        for w_x, channels in zip(encoder.projections, vgg.channels, strict=True):
            assert w_x.in_channels == channels + 3
            w_x.weight[:, :channels] = 0
        features = encoder(image)
    for scale, (w_x, f) in enumerate(zip(encoder.projections, features, strict=True)):
        cell = 2**scale
        area_mean = reduce(image, "b c (h p) (w q) -> b c h w", "mean", p=cell, q=cell)
        expected = F.conv2d(area_mean, w_x.weight[:, -3:], w_x.bias)
        assert torch.allclose(f, expected, atol=1e-5), f"scale {scale}"
    plain = ImageEncoder(vgg=vgg, image_channels=4)
    assert [w_x.in_channels for w_x in plain.projections] == vgg.channels


# ---------------------------------------------------------------------------------------------
# LabelEncoder


def test_label_features_match_vgg_resolutions_also_for_odd_sizes(vgg):
    encoder = LabelEncoder(num_classes=5, label_channels=6, num_scales=4)
    labels = random_labels(1, 5, 37, 50, seed=0)
    label_sizes = [tuple(f.shape[-2:]) for f in encoder(labels)]
    image_sizes = [tuple(f.shape[-2:]) for f in vgg(torch.zeros(1, 3, 37, 50))]
    assert label_sizes == image_sizes
    assert all(f.shape[1] == 6 for f in encoder(labels))


def test_one_label_encoder_encodes_target_and_exemplar_alike():
    """Eq. 2 and 3 share W_c: one set of weights, and each map's features do not depend on the other."""
    encoder = LabelEncoder(num_classes=4, label_channels=6, num_scales=3)
    assert len(encoder.convs) == 4
    c1, c2 = random_labels(1, 4, 32, 32, seed=1), random_labels(1, 4, 32, 32, seed=2)
    together = encoder(torch.cat([c1, c2]))
    for f_both, f_1, f_2 in zip(together, encoder(c1), encoder(c2), strict=True):
        assert torch.allclose(f_both, torch.cat([f_1, f_2]), atol=1e-6)


def test_coarsest_label_features_depend_only_on_the_coarsest_labels():
    """Eq. 2, i = L: F_c^(L) = LReLU(W_c^(L) * c^(L)); finer scales see the finer labels."""
    num_scales = 3
    encoder = LabelEncoder(num_classes=4, label_channels=6, num_scales=num_scales)
    labels = random_labels(1, 4, 32, 32, seed=3)
    changed = labels.clone()
    changed[0, :, 1, 1] = torch.eye(4)[(labels[0, :, 1, 1].argmax() + 1) % 4]  # another class at pixel (1, 1)
    before, after = encoder(labels), encoder(changed)
    assert torch.equal(before[num_scales], after[num_scales]), "pixel (1, 1) is not sampled by nearest at scale L"
    assert not torch.equal(before[0], after[0])


def test_label_encoder_gradients_reach_every_w_c():
    encoder = LabelEncoder(num_classes=4, label_channels=6, num_scales=4)
    features = encoder(random_labels(2, 4, 32, 32, seed=4))
    features[0].mul(torch.randn_like(features[0])).sum().backward()  # the finest scale reaches every W_c (Eq. 2)
    for w_c in encoder.convs:
        assert w_c.weight.grad is not None and w_c.weight.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("size", "new_size"), [((64, 64), (32, 32)), ((64, 96), (4, 6)), ((66, 64), (33, 16)), ((65, 64), (32, 32))]
)
def test_resize_labels_is_nearest_interpolation_whether_or_not_the_factor_is_whole(size, new_size):
    labels = torch.randint(0, 6, (2, *size))
    one_hot = F.one_hot(labels, 6).permute(0, 3, 1, 2).float()  # [B, C, H, W]
    resized = resize_labels(one_hot, new_size)
    assert torch.equal(resized, F.interpolate(one_hot, size=new_size, mode="nearest"))
    assert torch.equal(resized.sum(dim=1), torch.ones(2, *new_size)), "still one-hot"
