"""The `egsynth` synthesis commands as a user runs them in the smoke repo: its trained `full` generator and parser by
default, test scenes of its data. Files are only read there; everything is written under tmp_path. The commands run
in this process (the README's test runs the installed command as a subprocess)."""

import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from egsynth.parsing.data import read_label_map, write_label_map
from tests._repo import egsynth_here

pytestmark = pytest.mark.e2e


def egsynth(smoke_repo, command: str, options: dict[str, object]) -> subprocess.CompletedProcess:
    """`egsynth COMMAND --option value ...` in the smoke repo (so --model and --parser default to its models)."""
    root, env, _ = smoke_repo
    return egsynth_here(root, env, command, *(str(part) for item in options.items() for part in item))


def succeeded(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-4000:]


def read_png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


@pytest.fixture(scope="module")
def scenes(smoke_repo, tmp_path_factory) -> dict[str, Path]:
    """Three test scenes: a target label map, and two exemplars with their parsed label maps, the second
    cropped (image and labels alike, into a directory of this module) so that its size differs from the target's."""
    root, _, _ = smoke_repo
    table = pd.read_parquet(root / "data" / "interim" / "scenes.parquet")
    parsed = pd.read_parquet(root / "data" / "interim" / "parsed" / "index.parquet").set_index("image_id")
    test = table[table["split"] == "test"].sort_values("image_id").head(3)
    assert len(test) == 3, "the smoke preset keeps at least three test scenes"
    target, first, second = (row for _, row in test.iterrows())
    cropped = tmp_path_factory.mktemp("cropped")
    image = read_png(root / second["image_path"])[:48, :40]
    Image.fromarray(np.ascontiguousarray(image)).save(cropped / "exemplar.png")
    labels = read_label_map(root / parsed.loc[second["image_id"], "parsed_path"])[:48, :40]
    write_label_map(cropped / "exemplar_labels.png", np.ascontiguousarray(labels))
    return {
        "label": root / target["label_path"],
        "first": root / first["image_path"],
        "first_labels": root / parsed.loc[first["image_id"], "parsed_path"],
        "second": cropped / "exemplar.png",
        "second_labels": cropped / "exemplar_labels.png",
    }


def with_exemplar(scenes: dict[str, Path], name: str, output: Path) -> dict[str, object]:
    """Options of `synthesize` painting the target label map with exemplar `name` and its label map."""
    return {
        "--label": scenes["label"],
        "--exemplar": scenes[name],
        "--exemplar-label": scenes[f"{name}_labels"],
        "-o": output,
    }


def test_synthesize_paints_the_label_map_at_its_size_with_given_or_parsed_exemplar_labels(smoke_repo, scenes, tmp_path):
    height, width = read_label_map(scenes["label"]).shape
    assert read_png(scenes["second"]).shape[:2] != (height, width)
    given = with_exemplar(scenes, "second", tmp_path / "given.png")
    parsed = {key: value for key, value in given.items() if key != "--exemplar-label"} | {"-o": tmp_path / "parsed.png"}
    for options in (given, parsed):
        succeeded(egsynth(smoke_repo, "synthesize", options))
        assert read_png(options["-o"]).shape == (height, width, 3)


def test_interpolation_endpoints_are_the_two_single_exemplar_outputs(smoke_repo, scenes, tmp_path):
    singles = []
    for name in ("first", "second"):
        succeeded(egsynth(smoke_repo, "synthesize", with_exemplar(scenes, name, tmp_path / f"{name}.png")))
        singles.append(read_png(tmp_path / f"{name}.png"))
    options = {
        "--label": scenes["label"],
        "--exemplar-a": scenes["first"],
        "--exemplar-a-label": scenes["first_labels"],
        "--exemplar-b": scenes["second"],
        "--exemplar-b-label": scenes["second_labels"],
        "--steps": 3,
        "-o": tmp_path / "mix.png",
    }
    succeeded(egsynth(smoke_repo, "interpolate", options))
    ends = [read_png(tmp_path / "mix_00.png"), read_png(tmp_path / "mix_02.png")]
    for end, single in zip(ends, singles, strict=True):
        # equal in exact arithmetic; float32 may move a value at a rounding boundary by one 8-bit level
        difference = np.abs(end.astype(int) - single.astype(int))
        assert difference.max() <= 1 and (difference > 0).mean() < 1e-3


def test_attention_maps_and_extrapolation_are_written(smoke_repo, scenes, tmp_path):
    attention = tmp_path / "attention"
    options = with_exemplar(scenes, "first", tmp_path / "out.png") | {"--attention": attention}
    succeeded(egsynth(smoke_repo, "synthesize", options))
    maps = np.load(attention / "attention.npz")
    scales = sorted(int(name.removeprefix("alpha_")) for name in maps.files if name.startswith("alpha_"))
    figures = {path.name for path in attention.glob("attention_scale*.png")}
    assert scales and figures == {f"attention_scale{scale}.png" for scale in scales}
    for scale in scales:
        np.testing.assert_allclose(maps[f"alpha_{scale}"].sum(axis=(1, 2)), 1, rtol=1e-4)  # Eq. 4
    large = tmp_path / "large.png"  # the target at twice its size, from an exemplar at the trained size
    write_label_map(large, np.kron(read_label_map(scenes["label"]), np.ones((2, 2), dtype=np.uint8)))
    options = with_exemplar(scenes, "first", tmp_path / "wide.png") | {"--label": large}
    succeeded(egsynth(smoke_repo, "extrapolate", options))
    assert read_png(tmp_path / "wide.png").shape == (*read_label_map(large).shape, 3)


def test_a_missing_exemplar_is_one_line_on_stderr_and_exit_2(smoke_repo, scenes, tmp_path):
    options = with_exemplar(scenes, "first", tmp_path / "out.png") | {"--exemplar": tmp_path / "nope.jpg"}
    result = egsynth(smoke_repo, "synthesize", options)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [f"error: {tmp_path / 'nope.jpg'}: file not found"]
    assert not (tmp_path / "out.png").exists()
