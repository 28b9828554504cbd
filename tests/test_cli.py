import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from egsynth.cli import app
from egsynth.config import ScenesConfig
from egsynth.data import procedural
from egsynth.data.embedded import plan_scenes, write_embedded_dataset

CONFIG = ScenesConfig(seed=1, num_train=3, num_val=2, height=40, width=56, workers=1)
runner = CliRunner()


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("scenes")
    write_embedded_dataset(CONFIG, root)
    return root


def test_swap_truth_equals_a_direct_render_of_layout_a_in_style_b(scenes, tmp_path):
    output = tmp_path / "swap.png"
    result = runner.invoke(
        app, ["swap-truth", "--layout-of", "2", "--style-of", "5", "-o", str(output), "--scenes", str(scenes)]
    )
    assert result.exit_code == 0, result.output
    plans = {plan.image_id: plan for plan in plan_scenes(CONFIG)}
    target, exemplar = plans[2], plans[5]
    expected = procedural.render(
        procedural.sample_layout(target.layout_seed, target.kind),
        procedural.sample_style(exemplar.style_seed),
        target.texture_seed,
        CONFIG.height,
        CONFIG.width,
    )
    assert np.array_equal(np.asarray(Image.open(output)), expected)


def test_swap_truth_of_unknown_id_is_one_line_and_nonzero_exit(scenes, tmp_path):
    result = runner.invoke(
        app,
        ["swap-truth", "--layout-of", "2", "--style-of", "77", "-o", str(tmp_path / "x.png"), "--scenes", str(scenes)],
    )
    assert result.exit_code == 2
    assert "no image with id 77 (ids 1-5)" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "x.png").exists()


def test_swap_truth_without_the_embedded_dataset_names_the_missing_file(tmp_path):
    result = runner.invoke(
        app,
        ["swap-truth", "--layout-of", "1", "--style-of", "1", "-o", str(tmp_path / "x.png"), "--scenes", str(tmp_path)],
    )
    assert result.exit_code == 2 and "procedural.parquet: missing" in result.output


def test_check_params_names_the_unknown_key(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("scenes:\n  sed: 1\n")
    result = runner.invoke(app, ["check-params", str(bad)])
    assert result.exit_code == 2 and "unknown key 'scenes.sed'" in result.output


@pytest.mark.parametrize("kind", ["directory", "binary", "duplicate key", "bool for an int"])
def test_check_params_on_a_bad_file_is_one_line_naming_it(tmp_path, kind):
    path = tmp_path / "params.yaml"
    if kind == "directory":
        path.mkdir()
    elif kind == "binary":
        path.write_bytes(bytes(range(256)) * 4)
    elif kind == "duplicate key":
        path.write_text("scenes:\n  seed: 1\n  seed: 2\n")
    else:
        path.write_text("train:\n  batch_size: true\n")
    result = runner.invoke(app, ["check-params", str(path)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith(f"error: {path}: ")


def test_swap_truth_refuses_to_write_over_its_own_input(scenes):
    image = next((scenes / "images" / "val2017").iterdir())
    before = image.read_bytes()
    result = runner.invoke(
        app, ["swap-truth", "--layout-of", "4", "--style-of", "5", "-o", str(image), "--scenes", str(scenes)]
    )
    assert result.exit_code == 2 and f"{image}: is inside the dataset {scenes}" in result.output
    assert image.read_bytes() == before
