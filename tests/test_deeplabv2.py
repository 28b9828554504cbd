"""DeepLab-v2 as the exemplar parser: deeplab-pytorch's public COCO-stuff checkpoints load as they are and
parse into egsynth's label values.

The checkpoints here are written from the public layout (`public_shapes`, built from deeplab-pytorch's
resnet.py / deeplabv2.py / msc.py, not from our module), each tensor one constant broadcast to its shape
so that a 56M-parameter file takes a few kilobytes.
"""

import re

import numpy as np
import pandas as pd
import pytest
import torch

from egsynth.config import ParserConfig
from egsynth.data import cocostuff
from egsynth.data.labels import INDEX_TO_VALUE
from egsynth.parsing import ParserError, build_parser, load_checkpoint, make_parser, predict_labels
from egsynth.parsing.deeplabv2 import DeepLabV2, deeplabv2_resnet101
from tests.cocotree import label_value

ARCHITECTURE = "deeplabv2_resnet101"
PUBLIC_FILE = "deeplabv2_resnet101_msc-cocostuff164k-100000.pth"
SIZE = 16  # input side: 3 x 3 logits (16 -> 8 -> 5 -> 3 at output stride 8)
LAYERS = {  # name: (bottlenecks, input channels, inner channels, output channels) of ResNet-101
    "layer2": (3, 64, 64, 256),
    "layer3": (4, 256, 128, 512),
    "layer4": (23, 512, 256, 1024),
    "layer5": (3, 1024, 512, 2048),
}
UNUSED_VALUES = sorted(set(range(182)) - set(INDEX_TO_VALUE.tolist()))  # label values of no COCO-stuff class


def public_shapes(label_channels: int = 182) -> dict[str, tuple[int, ...]]:
    """Key -> shape of deeplab-pytorch's `DeepLabV2_ResNet101_MSC(n_classes=label_channels).state_dict()`."""
    shapes = {}

    def conv_bn(name: str, out_channels: int, in_channels: int, kernel: int) -> None:
        shapes[f"{name}.conv.weight"] = (out_channels, in_channels, kernel, kernel)
        for stat in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{name}.bn.{stat}"] = (out_channels,)
        shapes[f"{name}.bn.num_batches_tracked"] = ()

    conv_bn("base.layer1.conv1", 64, 3, 7)
    for layer, (blocks, in_channels, inner, out_channels) in LAYERS.items():
        for block in range(1, blocks + 1):
            prefix = f"base.{layer}.block{block}"
            conv_bn(f"{prefix}.reduce", inner, in_channels if block == 1 else out_channels, 1)
            conv_bn(f"{prefix}.conv3x3", inner, inner, 3)
            conv_bn(f"{prefix}.increase", out_channels, inner, 1)
            if block == 1:
                conv_bn(f"{prefix}.shortcut", out_channels, in_channels, 1)
    for branch in range(4):  # ASPP rates 6, 12, 18, 24
        shapes[f"base.aspp.c{branch}.weight"] = (label_channels, 2048, 3, 3)
        shapes[f"base.aspp.c{branch}.bias"] = (label_channels,)
    return shapes


def broadcast(value: float, shape: tuple[int, ...], key: str) -> torch.Tensor:
    dtype = torch.long if key.endswith("num_batches_tracked") else torch.float32
    return torch.tensor(value, dtype=dtype).expand(shape)


def silent_trunk_checkpoint(aspp_bias: torch.Tensor) -> dict[str, torch.Tensor]:
    """Public layout whose convs are all zero: every pixel's logits are the summed ASPP biases (here c0's)."""
    state = {}
    for key, shape in public_shapes().items():
        value = 1.0 if key.endswith(("bn.weight", "running_var")) else 0.0
        state[key] = broadcast(value, shape, key)
    state["base.aspp.c0.bias"] = aspp_bias
    return state


def biases_for(winner: int) -> torch.Tensor:
    """[182] biases where `winner` beats every used value and every unused value beats `winner`."""
    bias = torch.zeros(182)
    bias[UNUSED_VALUES] = 5.0
    bias[winner] = 1.0
    return bias


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One thread: ResNet-101 at 16 px is hundreds of tiny ops, which stall on a shared, busy CPU otherwise."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# ----------------------------------------------------------------------------
# checkpoint layout


def test_public_checkpoint_layout_loads_without_conversion_tensor_by_tensor(tmp_path):
    shapes = public_shapes()
    assert len(shapes) == 632 and sum(key.endswith("conv.weight") for key in shapes) == 104
    named = {"base.layer1.conv1.conv.weight", "base.layer2.block1.shortcut.bn.running_var", "base.aspp.c3.bias"}
    assert named <= set(shapes)
    state = {key: broadcast(i, shape, key) for i, (key, shape) in enumerate(shapes.items())}
    torch.save(state, tmp_path / PUBLIC_FILE)

    model = load_checkpoint(tmp_path / PUBLIC_FILE, ARCHITECTURE)

    assert not model.training
    loaded = model.state_dict()
    assert list(loaded) == list(shapes)
    assert all(torch.equal(loaded[key], state[key]) for key in shapes)


def test_label_value_logits_land_at_our_class_index_and_unused_values_never_win(tmp_path):
    sky = label_value("sky-other")
    torch.save(silent_trunk_checkpoint(biases_for(sky)), tmp_path / PUBLIC_FILE)
    config = ParserConfig(
        source="checkpoint", checkpoint=tmp_path / PUBLIC_FILE, architecture=ARCHITECTURE, image_size=SIZE
    )
    parser, _ = make_parser(config, pd.DataFrame(), device="cpu")
    assert parser.label == f"checkpoint:{PUBLIC_FILE}"
    image = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)

    def parsed() -> np.ndarray:
        (labels,) = predict_labels(parser.model, [image], image_size=SIZE)
        return labels

    assert len(UNUSED_VALUES) == 11 and np.all(parsed() == sky)
    after_a_gap = label_value("stop sign")  # 12, right after the unused value 11
    for value in (label_value("person"), after_a_gap, label_value("wood")):
        with torch.no_grad():
            parser.model.base.aspp.c0.bias.copy_(biases_for(value))
        assert np.all(parsed() == value), value


def test_network_sees_bgr_values_minus_the_caffe_mean_and_no_std_division(tmp_path):
    torch.save(silent_trunk_checkpoint(biases_for(0)), tmp_path / "weights.pth")
    model = load_checkpoint(tmp_path / "weights.pth", ARCHITECTURE)
    inputs = []
    model.base.register_forward_pre_hook(lambda _, args: inputs.append(args[0]))
    red, green, blue = 255, 0, 64
    predict_labels(model, [np.full((12, 12, 3), (red, green, blue), np.uint8)], image_size=SIZE)
    full_size = inputs[0]  # [1, 3, S, S]; then the 0.5 and 0.75 scales
    assert full_size.shape == (1, 3, SIZE, SIZE) and len(inputs) == 3
    expected = torch.tensor([blue - 104.008, green - 116.669, red - 122.675])
    assert torch.allclose(full_size[0], expected[:, None, None].expand(3, SIZE, SIZE), atol=1e-3)


# ----------------------------------------------------------------------------
# inference


def test_eval_takes_the_maximum_over_input_scales_and_training_uses_the_full_scale_only():
    torch.manual_seed(0)
    multi_scale = deeplabv2_resnet101().eval()  # random weights: the scales give different logits
    single_scale = DeepLabV2(label_channels=182, class_channels=INDEX_TO_VALUE.tolist(), fusion_scales=()).eval()
    single_scale.load_state_dict(multi_scale.state_dict())
    image = torch.rand(1, 3, SIZE, SIZE) * 2 - 1
    with torch.no_grad():
        fused, alone = multi_scale(image)["out"], single_scale(image)["out"]  # [1, 171, S, S]
        assert fused.shape == (1, cocostuff.NUM_CLASSES, SIZE, SIZE)
        assert (fused >= alone - 1e-5).all() and (fused > alone + 1e-3).any()
        multi_scale.train()
        single_scale.train()
        assert torch.allclose(multi_scale(image)["out"], single_scale(image)["out"])


def test_backbone_runs_from_our_images_to_layer5_like_the_network_itself():
    torch.manual_seed(0)
    network = deeplabv2_resnet101().eval()
    backbone = network.backbone
    assert list(backbone) == ["input", "layer1", "layer2", "layer3", "layer4", "layer5"]
    image = torch.rand(1, 3, SIZE, SIZE) * 2 - 1
    with torch.no_grad():
        h = image
        for block in backbone.values():
            h = block(h)
        trunk = network.base[:-1](network.to_caffe_input(image))  # [1, 2048, 3, 3]
    assert h.shape == (1, 2048, 3, 3) and torch.equal(h, trunk)


def test_another_class_count_gets_a_head_of_its_own():
    model = build_parser(ARCHITECTURE, num_classes=3).eval()
    assert model.base.aspp.c0.out_channels == 3
    with torch.no_grad():
        assert model(torch.zeros(2, 3, SIZE, SIZE))["out"].shape == (2, 3, SIZE, SIZE)


# ----------------------------------------------------------------------------
# wrong files


def pre_v1_names(key: str) -> str:
    """deeplab-pytorch before v1.0: MSC's `scale`, bottleneck `proj`, ASPP convs under `stages`."""
    return key.replace("base.", "scale.").replace(".shortcut.", ".proj.").replace("aspp.c", "aspp.stages.c")


@pytest.mark.parametrize(
    ("layout", "problem"),
    [
        pytest.param("pascal voc head", r"8 shape mismatches \(e\.g\. 'base\.aspp\.c0\.weight'\)", id="voc-head"),
        pytest.param(
            "pre-v1.0 names",
            r"632 missing keys \(e\.g\. 'base\.layer1\.conv1\.conv\.weight'\), 632 unexpected keys",
            id="pre-v1.0-names",
        ),
        pytest.param("not torch", r"not a readable torch weights file", id="not-torch"),
    ],
)
def test_a_wrong_file_is_one_error_naming_the_file_and_the_problem(tmp_path, layout, problem):
    path = tmp_path / "weights.pth"
    if layout == "not torch":
        path.write_bytes(b"<html>404</html>")
    else:
        shapes = public_shapes(label_channels=21 if layout == "pascal voc head" else 182)
        rename = pre_v1_names if layout == "pre-v1.0 names" else str
        torch.save({rename(key): broadcast(0.0, shape, key) for key, shape in shapes.items()}, path)
    with pytest.raises(ParserError, match=rf"^{re.escape(str(path))}: .*{problem}"):
        load_checkpoint(path, ARCHITECTURE)
