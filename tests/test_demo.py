"""`egsynth demo` apart from the browser: where a pixel's style came from, the slider, bad uploads, the app's routes."""

import base64
import io
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image
from typer.testing import CliRunner

from egsynth.cli import app
from egsynth.data.cocostuff import category
from egsynth.data.labels import UNLABELED_INDEX, VALUE_TO_INDEX
from egsynth.demo.core import ClassInfo, Demo, Upload, legend, list_models, list_scenes
from egsynth.demo.pixel_attention import class_shares, heat_overlay, pixel_attention
from egsynth.demo.server import create_app
from egsynth.evaluation.attention import TransferMatrix
from egsynth.models.msca import AttentionRecord
from egsynth.parsing.parser import Parser, build_parser, save_parser
from egsynth.synthesis import InputError, Synthesizer
from tests._synthesis import assert_equal_up_to_rounding, write_png16_rgb
from tests.demo_tree import make_demo_tree

SIZE = 32
runner = CliRunner()


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    tree = make_demo_tree(root, size=SIZE)
    parser = Parser(
        label="lraspp-untrained",
        source="train",
        model=build_parser("lraspp_mobilenet_v3_large").eval(),
        architecture="lraspp_mobilenet_v3_large",
        image_size=SIZE,
    )
    save_parser(parser, root / "parser.pt")
    return tree


@pytest.fixture(scope="module")
def demo(tree) -> Demo:
    models, default = list_models(tree.models, tree.models / "full" / "generator.pt")
    return Demo(
        models=models,
        default_model=default,
        parser=tree.root / "parser.pt",
        scenes=list_scenes(tree.eval_dir),
        device=torch.device("cpu"),
    )


def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def photo_of(tree, scene: str) -> np.ndarray:
    with Image.open(tree.eval_dir / "duplicating" / scene / "exemplar.png") as image:
        return np.asarray(image)


def random_record(generator: torch.Generator, *, k: int, exemplar: tuple[int, int], target: tuple[int, int]):
    """α softmax-normalized over each map's positions (Eq. 4), β over the K maps (Eq. 7), the gate 1."""
    alpha = torch.randn(1, k, exemplar[0] * exemplar[1], generator=generator).softmax(-1).reshape(1, k, *exemplar)
    beta = torch.randn(1, k, *target, generator=generator).softmax(1)
    return AttentionRecord(alpha=alpha, gate=torch.ones(1, k), beta=beta)


# ---------------------------------------------------------------------------------------------
# where a pixel's style came from


def test_a_pixels_attention_sums_to_one_over_the_exemplar_at_every_scale(demo, tree):
    result = demo.synthesize("full", tree.scenes[0], tree.scenes[1])
    for x, y in [(0, 0), (SIZE - 1, SIZE - 1), (5, 20), (SIZE // 2, 3)]:
        explained = demo.explain(result.id, x=x, y=y)
        assert len(explained.scales) == len(result.records) == 3
        for scale in explained.scales:
            assert scale.weights.shape == result.records[scale.scale].alpha.shape[-2:]
            assert (scale.weights >= 0).all() and scale.weights.sum() == pytest.approx(1.0, abs=1e-5)
            assert sum(scale.classes.values()) == pytest.approx(1.0, abs=1e-5)
            assert 0 < scale.carried < 1, "a sigmoid gate (Eq. 6) passes part of every map"
        assert explained.target_class == result.target.labels[y, x]


def test_a_pixel_draws_on_the_maps_its_channel_attention_weighs_at_its_cell_of_a_coarser_grid():
    alpha = torch.rand(1, 3, 4, 5)
    alpha = alpha / alpha.sum(dim=(2, 3), keepdim=True)
    beta = torch.zeros(1, 3, 4, 4)  # a 4x4 grid over an 8x8 target
    beta[0, :, 2, 3] = torch.tensor([0.25, 0.75, 0.0])  # the cell of target pixel (y, x) = (5, 6)
    beta[0, 2, :, :] = 1.0
    beta[0, 2, 2, 3] = 0.0
    record = AttentionRecord(alpha=alpha, gate=torch.ones(1, 3), beta=beta)
    weights = pixel_attention(record, 5, 6, (8, 8))
    np.testing.assert_allclose(weights, (0.25 * alpha[0, 0] + 0.75 * alpha[0, 1]).numpy(), rtol=1e-6)
    np.testing.assert_allclose(pixel_attention(record, 0, 0, (8, 8)), alpha[0, 2].numpy(), rtol=1e-6)


def test_summed_over_a_target_class_the_pixel_attention_is_the_transfer_of_fig_10():
    generator = torch.Generator().manual_seed(0)
    record = random_record(generator, k=4, exemplar=(6, 7), target=(5, 6))
    classes = 5
    exemplar_indices = torch.randint(0, classes, (6, 7), generator=generator)
    target_indices = torch.randint(0, classes, (5, 6), generator=generator)
    one_hot = lambda indices: torch.nn.functional.one_hot(indices, classes).permute(2, 0, 1)[None].float()  # noqa: E731
    transfer = TransferMatrix(num_classes=classes)
    transfer.add(record, one_hot(exemplar_indices), one_hot(target_indices))
    summed = np.zeros((classes, classes))
    for y in range(5):
        for x in range(6):
            shares = class_shares(pixel_attention(record, y, x, (5, 6)), exemplar_indices.numpy().astype(np.uint8))
            for exemplar_class, share in shares.items():
                summed[exemplar_class, target_indices[y, x]] += share
    np.testing.assert_allclose(summed, transfer.mass, rtol=1e-5, atol=1e-7)


def test_unlabeled_exemplar_pixels_take_their_share_as_unlabeled():
    weights = np.array([[0.5, 0.25], [0.25, 0.0]])
    labels = np.array([[3, 3, UNLABELED_INDEX, UNLABELED_INDEX]] * 2 + [[7, 7, 3, 3]] * 2, dtype=np.uint8)  # [4, 4]
    assert class_shares(weights, labels) == {3: 0.5, UNLABELED_INDEX: 0.25, 7: 0.25}


def test_the_legend_names_and_colors_each_class_present_once_unlabeled_last():
    sky, sea = (int(VALUE_TO_INDEX[category(name).label_value]) for name in ("sky-other", "sea"))
    target = np.array([[sea, UNLABELED_INDEX]], dtype=np.uint8)
    exemplar = np.array([[sky, sea]], dtype=np.uint8)
    shown = legend(target, exemplar)
    by_index = sorted([(sky, "sky-other"), (sea, "sea")])
    assert [info.name for info in shown] == [name for _, name in by_index] + ["unlabeled"]
    assert all(isinstance(info, ClassInfo) and len(info.color) == 7 for info in shown)
    assert shown[-1].color == "#000000" and len({info.color for info in shown}) == 3


def test_the_overlay_is_hottest_where_the_pixel_drew_most_and_keeps_the_exemplars_size():
    image = np.full((8, 12, 3), 128, dtype=np.uint8)
    weights = np.zeros((2, 3))
    weights[1, 2] = 1.0
    overlay = heat_overlay(image, weights)
    assert overlay.shape == image.shape and overlay.dtype == np.uint8
    hot, cold = overlay[4:, 8:], overlay[:4, :4]  # the cell of w[1, 2], and one of w's zeros
    assert (hot == hot[0, 0]).all() and (cold == cold[0, 0]).all()
    assert hot[0, 0, 0] > cold[0, 0, 0] and cold[0, 0, 2] > hot[0, 0, 2], "turbo: red where hot, blue where cold"


# ---------------------------------------------------------------------------------------------
# the slider and the choices


def test_the_sliders_ends_are_the_two_exemplars_outputs(demo, tree):
    a = demo.synthesize("full", tree.scenes[0], tree.scenes[1])
    b = demo.synthesize("full", tree.scenes[0], tree.scenes[2])
    start, exemplar_b = demo.mix(a.id, tree.scenes[2], None, 0.0)
    end, _ = demo.mix(a.id, tree.scenes[2], None, 1.0)
    middle, _ = demo.mix(a.id, tree.scenes[2], None, 0.5)
    assert_equal_up_to_rounding(start, a.image)
    assert_equal_up_to_rounding(end, b.image)
    assert np.abs(middle.astype(int) - a.image.astype(int)).max() > 1, "t = 0.5 differs from either end"
    np.testing.assert_array_equal(exemplar_b.image, photo_of(tree, tree.scenes[2]))


def test_an_uploaded_exemplar_is_read_like_the_scene_file_it_copies(demo, tree):
    scene = tree.eval_dir / "duplicating" / tree.scenes[1]
    by_scene = demo.synthesize("full", tree.scenes[0], tree.scenes[1])
    uploaded = Upload("photo.png", (scene / "exemplar.png").read_bytes())
    labels = Upload("photo_labels.png", (scene / "exemplar_labels.png").read_bytes())
    by_upload = demo.synthesize(
        "full",
        Upload("target.png", (tree.eval_dir / "duplicating" / tree.scenes[0] / "labels.png").read_bytes()),
        uploaded,
        labels,
    )
    np.testing.assert_array_equal(by_upload.image, by_scene.image)
    assert (by_upload.target_name, by_upload.exemplar_name) == ("target.png", "photo.png")


def test_an_uploaded_photo_without_its_label_map_is_parsed_by_the_parser(demo, tree):
    photo = tree.eval_dir / "duplicating" / tree.scenes[1] / "exemplar.png"
    result = demo.synthesize("full", tree.scenes[0], Upload("photo.png", photo.read_bytes()))
    parsed = Synthesizer(
        tree.models / "full" / "generator.pt", parser=tree.root / "parser.pt", device=torch.device("cpu")
    )
    np.testing.assert_array_equal(result.exemplar.labels, parsed.read_exemplar(photo).labels)


def test_the_choices_are_every_trained_variant_and_every_scene(tree, tmp_path):
    models, default = list_models(tree.models, tree.models / "full" / "generator.pt")
    assert (models, default) == (
        {"full": tree.models / "full" / "generator.pt", "gap": tree.models / "gap" / "generator.pt"},
        "full",
    )
    elsewhere = tmp_path / "mine" / "generator.pt"
    models, default = list_models(tree.models, elsewhere)
    assert default == "mine" and list(models) == ["mine", "full", "gap"]
    assert list(list_scenes(tree.eval_dir)) == tree.scenes
    assert list_scenes(tmp_path) == {}


def test_a_model_whose_file_is_missing_is_refused_when_the_demo_starts(tree, tmp_path):
    with pytest.raises(InputError, match="generator file not found"):
        Demo(
            models={"lost": tmp_path / "lost.pt"},
            default_model="lost",
            parser=tree.root / "parser.pt",
            scenes={},
            device=torch.device("cpu"),
        )


# ---------------------------------------------------------------------------------------------
# bad uploads: the CLI's line, and the demo goes on


def bad_uploads(tree, scratch: Path) -> dict[str, dict[str, Upload]]:
    """Case -> the demo's uploads, one of them bad, each named as the CLI will be given it."""
    photo = photo_of(tree, tree.scenes[1])
    with Image.open(tree.eval_dir / "duplicating" / tree.scenes[0] / "labels.png") as image:
        values = np.array(image)
    values[:4, :4] = 200  # no COCO-stuff label
    other_size = np.full((SIZE + 8, SIZE), category("sky-other").label_value, dtype=np.uint8)
    rgb16 = write_png16_rgb(scratch / "rgb16.png", photo.astype(np.uint16) * 257)
    return {
        "corrupt": {"exemplar": Upload("corrupt.jpg", b"\xff\xd8\xff\xe0 not really a jpeg" + bytes(range(256)))},
        "empty": {"target": Upload("empty.png", b"")},
        "grayscale": {"exemplar": Upload("gray.png", png_bytes(photo[..., 0]))},
        "rgba": {
            "exemplar": Upload("rgba.png", png_bytes(np.dstack([photo, np.full(photo.shape[:2], 255, np.uint8)])))
        },
        "16-bit gray": {"exemplar": Upload("gray16.png", png_bytes(photo[..., 0].astype(np.uint16) * 257))},
        "16-bit rgb": {"exemplar": Upload("rgb16.png", rgb16.read_bytes())},
        "unknown label value": {"target": Upload("value_200.png", png_bytes(values))},
        "label map of another size": {
            "exemplar": Upload("photo.png", png_bytes(photo)),
            "exemplar_labels": Upload("tall_labels.png", png_bytes(other_size)),
        },
    }


BAD_CASES = [
    "corrupt",
    "empty",
    "grayscale",
    "rgba",
    "16-bit gray",
    "16-bit rgb",
    "unknown label value",
    "label map of another size",
]
CLI_OPTION = {"target": "--label", "exemplar": "--exemplar", "exemplar_labels": "--exemplar-label"}


@pytest.mark.parametrize("case", BAD_CASES)
def test_each_bad_upload_is_the_clis_one_line_and_the_demo_goes_on(demo, tree, tmp_path, monkeypatch, case):
    scratch, cwd = tmp_path / "scratch", tmp_path / "cwd"
    scratch.mkdir()
    cwd.mkdir()
    uploads = bad_uploads(tree, scratch)[case]
    scene = tree.eval_dir / "duplicating"
    options = {
        "--label": scene / tree.scenes[0] / "labels.png",
        "--exemplar": scene / tree.scenes[1] / "exemplar.png",
        "--exemplar-label": scene / tree.scenes[1] / "exemplar_labels.png",
        "--parser": tree.root / "parser.pt",
        "--model": tree.models / "full" / "generator.pt",
        "-o": "out.png",
    }
    if "exemplar" in uploads and "exemplar_labels" not in uploads:
        del options["--exemplar-label"]  # an uploaded photo alone is parsed
    monkeypatch.chdir(cwd)
    for role, upload in uploads.items():  # the same bytes under the same name, given to the CLI as a relative path
        Path(upload.name).write_bytes(upload.data)
        options[CLI_OPTION[role]] = upload.name
    cli = runner.invoke(app, ["synthesize", *(str(part) for option in options.items() for part in option)])
    assert cli.exit_code == 2, cli.output
    (cli_line,) = cli.stderr.strip().splitlines()

    target = uploads.get("target", tree.scenes[0])
    exemplar = uploads.get("exemplar", tree.scenes[1])
    with pytest.raises(InputError) as refused:
        demo.synthesize("full", target, exemplar, uploads.get("exemplar_labels"))
    assert f"error: {refused.value}" == cli_line
    assert demo.synthesize("full", tree.scenes[0], tree.scenes[1]).image.shape == (SIZE, SIZE, 3), "the demo goes on"


def test_a_scenes_exemplar_takes_no_uploaded_label_map(demo, tree):
    with pytest.raises(InputError, match="labels.png: a scene's exemplar comes with its own label map"):
        demo.synthesize("full", tree.scenes[0], tree.scenes[1], Upload("labels.png", b""))


def test_a_bad_pixel_synthesis_or_t_is_one_line(demo, tree):
    result = demo.synthesize("full", tree.scenes[0], tree.scenes[1])
    with pytest.raises(InputError, match=rf"pixel \({SIZE}, 0\) lies outside the {SIZE}x{SIZE} output"):
        demo.explain(result.id, x=SIZE, y=0)
    with pytest.raises(InputError, match="synthesis feedface is no longer kept"):
        demo.explain("feedface", x=0, y=0)
    with pytest.raises(InputError, match=r"t 1.5: the interpolation factor must lie in \[0, 1\]"):
        demo.mix(result.id, tree.scenes[2], None, 1.5)
    with pytest.raises(InputError, match="nope: no such model"):
        demo.synthesize("nope", tree.scenes[0], tree.scenes[1])
    with pytest.raises(InputError, match="nope: no such scene"):
        demo.synthesize("full", "nope", tree.scenes[1])


def test_a_generator_without_msca_says_it_has_no_attention_and_no_slider(demo, tree):
    result = demo.synthesize("gap", tree.scenes[0], tree.scenes[1])
    assert not result.has_attention
    with pytest.raises(InputError, match="gap: the gap generator has no spatial and channel attention"):
        demo.explain(result.id, x=0, y=0)
    with pytest.raises(InputError, match="style interpolation mixes MSCA attention"):
        demo.mix(result.id, tree.scenes[2], None, 0.5)


# ---------------------------------------------------------------------------------------------
# the app's routes


def decode_png(data_url: str) -> np.ndarray:
    header, data = data_url.split(",", 1)
    assert header == "data:image/png;base64"
    with Image.open(io.BytesIO(base64.b64decode(data))) as image:
        return np.asarray(image)


def test_the_app_serves_the_page_a_synthesis_a_click_a_mix_and_a_bad_uploads_line(demo, tree):
    client = TestClient(create_app(demo))
    page = client.get("/")
    assert page.status_code == 200 and 'id="output"' in page.text and "/static/demo.js" in page.text
    assert client.get("/static/demo.js").status_code == 200
    assert client.get("/api/choices").json() == {
        "models": ["full", "gap"],
        "default_model": "full",
        "scenes": tree.scenes,
    }

    answer = client.post(
        "/api/synthesize", json={"model": "full", "target": tree.scenes[0], "exemplar": tree.scenes[1]}
    )
    assert answer.status_code == 200, answer.text
    synthesis = answer.json()
    assert (
        decode_png(synthesis["image"]).shape == (SIZE, SIZE, 3) and synthesis["has_attention"] and synthesis["can_mix"]
    )
    np.testing.assert_array_equal(decode_png(synthesis["exemplar"]), photo_of(tree, tree.scenes[1]))
    kept = demo.synthesis(synthesis["synthesis"])
    shown = legend(kept.target.labels, kept.exemplar.labels)
    assert synthesis["legend"] == [{"name": info.name, "color": info.color} for info in shown]

    explained = client.post("/api/explain", json={"synthesis": synthesis["synthesis"], "x": 3, "y": 4}).json()
    assert [scale["width"] for scale in explained["scales"]] == [SIZE, SIZE // 2, SIZE // 4]
    assert all(decode_png(scale["overlay"]).shape == (SIZE, SIZE, 3) for scale in explained["scales"])
    assert sum(c["share"] for c in explained["scales"][0]["classes"]) <= 1 + 1e-6

    mixed = client.post(
        "/api/mix", json={"synthesis": synthesis["synthesis"], "exemplar_b": tree.scenes[2], "t": 1.0}
    ).json()
    assert decode_png(mixed["image"]).shape == (SIZE, SIZE, 3)

    rgba = np.dstack([photo_of(tree, tree.scenes[1]), np.full((SIZE, SIZE), 255, np.uint8)])
    upload = {"name": "rgba.png", "data": base64.b64encode(png_bytes(rgba)).decode()}
    refused = client.post("/api/synthesize", json={"model": "full", "target": tree.scenes[0], "exemplar": upload})
    assert refused.status_code == 400
    assert refused.json() == {"error": "error: rgba.png: expected an 8-bit RGB image, got RGBA (with alpha)"}
    not_base64 = client.post(
        "/api/synthesize", json={"model": "full", "target": {"name": "x.png", "data": "@@"}, "exemplar": tree.scenes[1]}
    )
    assert not_base64.json() == {"error": "error: x.png: the upload is not base64 data"}
    assert client.post("/api/explain", json={"synthesis": synthesis["synthesis"], "x": 0, "y": 0}).status_code == 200


# ---------------------------------------------------------------------------------------------
# the command


def test_the_demo_command_refuses_a_port_in_use_with_one_line(tree):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = runner.invoke(app, ["demo", "--models", str(tree.models), "--port", str(port)])
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: --host 127.0.0.1 --port {port}: cannot serve there"), line


def test_the_demo_command_names_a_missing_model(tree, tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    result = runner.invoke(
        app, ["demo", "--model", str(tmp_path / "none.pt"), "--models", str(tree.models), "--port", str(port)]
    )
    assert result.exit_code == 2, result.output
    assert result.stderr.strip().splitlines() == [f"error: {tmp_path / 'none.pt'}: generator file not found"]
