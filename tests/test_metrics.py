import lpips
import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F
from skimage.metrics import peak_signal_noise_ratio as skimage_psnr
from skimage.metrics import structural_similarity as skimage_ssim
from torchmetrics.image.fid import FrechetInceptionDistance
from torchvision.models.vgg import cfgs, make_layers

from egsynth.evaluation.fid import FIDMetric, PooledFeatures, fid_metric
from egsynth.evaluation.metrics import (
    LPIPS_VGG16_LABEL,
    PARSER_TAPS,
    FeatureNet,
    LPIPSMetric,
    LPIPSTrunk,
    VGG19Features,
    lpips_distance,
    lpips_linear_weights,
    lpips_metric,
    psnr,
    ssim,
    style_distance,
    style_label,
)
from egsynth.losses import style_loss
from egsynth.models.features import BackboneWeightsMissing, VGGFeatures
from egsynth.parsing.parser import ARCHITECTURES, Parser, ParserError, build_parser, save_parser

ARCHITECTURE = "lraspp_mobilenet_v3_large"
STAND_IN = {"parser_path": None, "backbone": "random", "seed": 0}


def images(seed: int, *, batch: int = 3, size: int = 32) -> torch.Tensor:
    """Fixed random images [B, 3, S, S] in [-1, 1]."""
    return torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def unit_numpy(image: torch.Tensor) -> np.ndarray:
    """[3, H, W] in [-1, 1] -> [H, W, 3] float64 in [0, 1], skimage's layout."""
    return ((image.double().numpy().transpose(1, 2, 0) + 1) / 2).clip(0, 1)


@pytest.fixture
def no_downloads(monkeypatch, tmp_path):
    """An empty torch hub cache, and any download attempt fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"tried to download {args[:1]}")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    return tmp_path / "torch" / "hub"


@pytest.fixture(scope="module")
def parser_path(tmp_path_factory):
    """A small untrained LRASPP parser saved as `save_parser` writes a trained one (32 px)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_parser(ARCHITECTURE).eval()
    path = tmp_path_factory.mktemp("parser") / "parser.pt"
    label = f"{ARCHITECTURE}-trained"
    save_parser(Parser(label=label, source="train", model=model, architecture=ARCHITECTURE, image_size=32), path)
    return path


@pytest.fixture(scope="module")
def vgg():
    return VGGFeatures(backbone="random", seed=0, num_scales=0)


@pytest.fixture(scope="module")
def random_lpips(tmp_path_factory):
    """`lpips.LPIPS` with the shipped linear weights on a random VGG-16 trunk, built with downloads refused."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"tried to download {args[:1]}")

    hub = tmp_path_factory.mktemp("torch")
    with pytest.MonkeyPatch.context() as patch, torch.random.fork_rng(devices=[]):
        patch.setenv("TORCH_HOME", str(hub))
        patch.setattr(torch.hub, "download_url_to_file", refuse)
        patch.setattr(torch.hub, "load_state_dict_from_url", refuse)
        torch.manual_seed(0)
        with pytest.warns(UserWarning, match="deprecated"):  # torchvision on lpips's `pretrained=False`
            model = lpips.LPIPS(net="vgg", pnet_rand=True, pretrained=True, verbose=False)
    assert not any(hub.iterdir()), "building lpips.LPIPS wrote to the torch hub cache"
    return model


@pytest.fixture(scope="module")
def stand_in_lpips(parser_path):
    return {net: lpips_metric(net, **STAND_IN | {"parser_path": parser_path}) for net in ("parser", "backbone")}


# ----------------------------------------------------------------------------
# PSNR, SSIM


def test_psnr_equals_skimage():
    fake, real = images(0), images(1)
    expected = [skimage_psnr(unit_numpy(r), unit_numpy(f), data_range=1) for f, r in zip(fake, real, strict=True)]
    np.testing.assert_allclose(psnr(fake, real).numpy(), expected, rtol=1e-5)


def test_psnr_of_a_constant_offset_of_a_tenth_is_20_db():
    unit = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 0.9  # [0, 0.9]
    real, fake = unit * 2 - 1, (unit + 0.1) * 2 - 1
    np.testing.assert_allclose(psnr(fake, real).numpy(), [20.0, 20.0], atol=1e-4)


def test_ssim_equals_skimage_gaussian_ssim():
    real = images(1)
    fake = (real + 0.3 * images(2)).clamp(-1, 1)  # correlated, so SSIM is far from 0
    expected = [
        skimage_ssim(
            unit_numpy(f),
            unit_numpy(r),
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            channel_axis=2,
            data_range=1,
        )
        for f, r in zip(fake, real, strict=True)
    ]
    np.testing.assert_allclose(ssim(fake, real).numpy(), expected, atol=1e-5)


def test_ssim_of_identical_images_is_one():
    np.testing.assert_allclose(ssim(images(0), images(0)).numpy(), 1.0, atol=1e-6)


# ----------------------------------------------------------------------------
# LPIPS


def test_lpips_formula_with_shipped_linear_weights_equals_the_lpips_package(random_lpips):
    features = LPIPSTrunk(model=random_lpips, label="vgg16-random")
    metric = LPIPSMetric(features=features, weights=lpips_linear_weights(random_lpips))
    fake, real = images(0), images(1)
    with torch.no_grad():
        expected = random_lpips(fake, real).flatten()  # [B]
    torch.testing.assert_close(metric(fake, real), expected, rtol=1e-5, atol=1e-6)


def test_lpips_formula_with_uniform_weights_equals_the_lpips_baseline(random_lpips, monkeypatch):
    metric = LPIPSMetric(features=LPIPSTrunk(model=random_lpips, label="vgg16-random"), weights=None)
    fake, real = images(0), images(1)
    monkeypatch.setattr(random_lpips, "lpips", False)  # the package's uncalibrated baseline on the same trunk
    with torch.no_grad():
        expected = random_lpips(fake, real).flatten()  # [B]
    torch.testing.assert_close(metric(fake, real), expected, rtol=1e-5, atol=1e-6)


def test_lpips_distance_is_zero_to_itself_and_symmetric():
    features = [torch.randn(2, c, s, s, generator=torch.Generator().manual_seed(c)) for c, s in ((4, 8), (6, 4))]
    others = [f.flip(0) for f in features]
    weights = [torch.rand(4), torch.rand(6)]
    torch.testing.assert_close(lpips_distance(features, features, weights), torch.zeros(2))
    torch.testing.assert_close(lpips_distance(features, others, weights), lpips_distance(others, features, weights))
    assert (lpips_distance(features, others, None) > 0).all()


@pytest.mark.parametrize("net", ["parser", "backbone"])
def test_stand_in_lpips_is_zero_to_itself_symmetric_and_labelled(net, stand_in_lpips):
    metric = stand_in_lpips[net]
    fake, real = images(0), images(1)
    torch.testing.assert_close(metric(fake, fake), torch.zeros(3))
    torch.testing.assert_close(metric(fake, real), metric(real, fake))
    assert (metric(fake, real) > 0).all()
    assert metric.label.startswith("stand-in: ")
    assert (ARCHITECTURE if net == "parser" else "vgg19-random") in metric.label


def test_vgg16_lpips_without_the_imagenet_file_names_it(no_downloads):
    with pytest.raises(BackboneWeightsMissing) as error:
        lpips_metric("vgg16", **STAND_IN)
    assert isinstance(error.value, FileNotFoundError)
    assert str(no_downloads / "checkpoints" / "vgg16-397923af.pth") in str(error.value)
    assert "https://download.pytorch.org/models/vgg16-397923af.pth" in str(error.value)


def test_vgg16_lpips_loads_torchvisions_file_into_its_trunk(no_downloads):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        features = make_layers(cfgs["D"])  # VGG-16's `features`
    state = {f"features.{key}": value for key, value in features.state_dict().items()}
    (no_downloads / "checkpoints").mkdir(parents=True)
    torch.save(state, no_downloads / "checkpoints" / "vgg16-397923af.pth")
    metric = lpips_metric("vgg16", **STAND_IN)
    assert metric.label == LPIPS_VGG16_LABEL
    trunk = metric.features.trunk.state_dict()
    torch.testing.assert_close(trunk["slice1.0.weight"], features[0].weight, rtol=0, atol=0)  # conv1_1
    torch.testing.assert_close(trunk["slice5.28.bias"], features[28].bias, rtol=0, atol=0)  # conv5_3
    torch.testing.assert_close(metric(images(0), images(0)), torch.zeros(3))


def test_parser_metrics_refuse_the_oracle_naming_its_file(tmp_path):
    path = tmp_path / "oracle.pt"
    save_parser(Parser(label="oracle", source="oracle"), path)
    for build in (lpips_metric, fid_metric):
        with pytest.raises(ParserError, match=str(path)):
            build("parser", **STAND_IN | {"parser_path": path})


def test_parser_taps_name_blocks_of_every_architecture():
    for architecture, taps in PARSER_TAPS.items():
        assert set(taps) <= set(build_parser(architecture, num_classes=2).backbone.keys()), architecture
    assert set(PARSER_TAPS) == set(ARCHITECTURES)


def test_parser_features_are_lraspp_low_and_high_plus_two_shallower_stages(stand_in_lpips):
    features = stand_in_lpips["parser"].features
    image = images(0, size=48)
    layers = features(image)
    resized = F.interpolate(image, size=(32, 32), mode="bilinear", antialias=True, align_corners=False)
    with torch.no_grad():
        expected = features.backbone(resized)  # the parser's own {"low", "high"}, at its 32 px
    assert [f.shape[1] for f in layers] == [16, 24, 40, 960]
    torch.testing.assert_close(layers[2], expected["low"])
    torch.testing.assert_close(layers[3], expected["high"])


# ----------------------------------------------------------------------------
# FID


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) with scipy's matrix square root."""
    mu_a, mu_b = features_a.mean(0), features_b.mean(0)
    cov_a, cov_b = np.cov(features_a, rowvar=False), np.cov(features_b, rowvar=False)
    root = scipy.linalg.sqrtm(cov_a @ cov_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


class Projection(FeatureNet):
    """A fixed random 1x1 convolution to 6 channels: an 8-feature map with a well-conditioned covariance."""

    def __init__(self):
        super().__init__(label="stand-in: projection")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            self.conv = torch.nn.Conv2d(3, 6, kernel_size=3, stride=4)
        self.freeze()

    def forward(self, image):
        assert image.is_floating_point() and image.abs().max() <= 1, "expects [-1, 1] floats"
        return [torch.tanh(self.conv(image) ** 2)]


def test_fid_of_pooled_features_equals_scipy_frechet_distance():
    net = Projection()
    metric = FIDMetric(fid=FrechetInceptionDistance(feature=PooledFeatures(net=net)), label=net.label)
    fake, real = images(0, batch=40), images(1, batch=40) * 0.8
    for start in range(0, 40, 16):
        metric.update(fake[start : start + 16], real[start : start + 16])
    with torch.no_grad():
        pooled = [net(x)[0].mean((2, 3)).double().numpy() for x in (fake, real)]  # [N, 6] each
    expected = frechet_distance(*pooled)
    assert metric.num_samples == (40, 40)
    assert metric.compute() == pytest.approx(expected, rel=1e-3)


def test_backbone_fid_equals_scipy_and_is_zero_for_the_same_set(vgg):
    metric = fid_metric("backbone", **STAND_IN)
    fake, real = images(0, batch=6), images(1, batch=6)
    metric.update(fake, real)
    with torch.no_grad():
        pooled = [vgg.perceptual_layers(x)[-1].mean((2, 3)).double().numpy() for x in (fake, real)]  # [N, 512] relu5_1
    with pytest.warns(scipy.linalg.LinAlgWarning, match="singular"):  # 6 samples, 512 dimensions
        expected = frechet_distance(*pooled)
    assert metric.compute() == pytest.approx(expected, rel=1e-3)
    assert metric.label == "stand-in: vgg19-random"
    metric.reset()
    metric.update(real, real)
    assert abs(metric.compute()) < 1e-4 * np.trace(np.cov(pooled[1], rowvar=False))


def test_parser_fid_pools_the_parser_high_features_of_the_images(parser_path):
    metric = fid_metric("parser", **STAND_IN | {"parser_path": parser_path})
    fake, real = images(0), images(1)
    metric.update(fake, real)
    with torch.no_grad():
        high = [metric.fid.inception.net.backbone(x)["high"].mean((2, 3)).double() for x in (fake, real)]  # [N, 960]
    torch.testing.assert_close(metric.fid.fake_features_sum, high[0].sum(0))
    torch.testing.assert_close(metric.fid.real_features_cov_sum, high[1].T @ high[1])
    assert metric.num_samples == (3, 3)
    assert metric.fid.inception.num_features == 960
    assert metric.label == f"stand-in: {ARCHITECTURE}-trained parser features"


def test_fid_needs_two_images_per_set():
    metric = fid_metric("backbone", **STAND_IN)
    metric.update(images(0, batch=1), images(1, batch=1))
    with pytest.raises(ValueError, match="at least 2"):
        metric.compute()


def test_inception_fid_without_torch_fidelitys_file_names_it(no_downloads):
    with pytest.raises(BackboneWeightsMissing) as error:
        fid_metric("inception", **STAND_IN)
    file_name = "weights-inception-2015-12-05-6726825d.pth"
    assert str(no_downloads / "checkpoints" / file_name) in str(error.value)
    assert f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{file_name}" in str(error.value)


# ----------------------------------------------------------------------------
# style loss


def test_style_distance_equals_numpy_gram_matrices(vgg):
    fake, real = images(0, batch=2), images(1, batch=2)
    with torch.no_grad():
        layers = [[f.double().numpy() for f in vgg.perceptual_layers(x)] for x in (fake, real)]
    expected = np.zeros(2)
    for f, r in zip(*layers, strict=True):
        _, c, h, w = f.shape
        gram_f = np.einsum("bchw,bdhw->bcd", f, f) / (c * h * w)
        gram_r = np.einsum("bchw,bdhw->bcd", r, r) / (c * h * w)
        expected += ((gram_f - gram_r) ** 2).mean(axis=(1, 2))
    np.testing.assert_allclose(style_distance(fake, real, vgg).numpy(), expected, rtol=1e-4)


def test_style_distance_of_a_batch_is_style_loss_of_each_pair_to_the_bit(vgg):
    fake, real = images(0, batch=4, size=64), images(1, batch=4, size=64)  # the evaluation's Gram shapes
    with torch.no_grad():
        layers_fake, layers_real = vgg.perceptual_layers(fake), vgg.perceptual_layers(real)
        pairs = [
            style_loss([f[i : i + 1] for f in layers_fake], [r[i : i + 1] for r in layers_real])
            for i in range(len(fake))
        ]
    assert torch.equal(style_distance(fake, real, vgg), torch.stack(pairs))


def test_style_distance_of_identical_images_is_zero(vgg):
    torch.testing.assert_close(style_distance(images(0), images(0), vgg), torch.zeros(3))


def test_labels_name_the_backbone_and_mark_stand_ins(vgg):
    assert style_label(vgg) == "stand-in: vgg19-random"
    assert VGG19Features(backbone="random", seed=0).label == "stand-in: vgg19-random"
