"""`egsynth synthesize`, `interpolate` and `extrapolate` with a tiny untrained generator (smoke preset's model):
what they write. Bad input and refused outputs are in test_synthesis_inputs.py."""

from pathlib import Path

import numpy as np
import pytest

from egsynth.parsing.data import write_label_map
from egsynth.parsing.parser import load_parser, predict_labels
from tests._synthesis import (
    SMOKE,
    Files,
    assert_equal_up_to_rounding,
    blocky_labels,
    interpolate_options,
    invoke,
    read_png,
    synthesize_options,
)

# ---------------------------------------------------------------------------------------------
# helpers


def synthesized(files: Files, tmp_path: Path, exemplar: str) -> np.ndarray:
    output = tmp_path / f"synthesized_{exemplar}.png"
    result = invoke("synthesize", synthesize_options(files, output, exemplar))
    assert result.exit_code == 0, result.output
    return read_png(output)


# ---------------------------------------------------------------------------------------------
# what the commands write


def test_synthesize_output_has_the_label_maps_size_whatever_the_exemplars_size(files, tmp_path):
    with_a, with_b = synthesized(files, tmp_path, "a"), synthesized(files, tmp_path, "b")
    assert with_a.shape == with_b.shape == (40, 56, 3) and with_a.dtype == np.uint8
    assert np.abs(with_a.astype(int) - with_b.astype(int)).mean() > 1, "the exemplar's style changes the output"


def test_synthesize_without_exemplar_label_paints_with_the_parsers_labels(files, tmp_path):
    parsed = tmp_path / "parsed.png"
    (values,) = predict_labels(
        load_parser(files.parser, device="cpu").model, [read_png(files.exemplar_a)], image_size=32
    )
    write_label_map(parsed, values)
    given = synthesize_options(files, tmp_path / "given.png") | {"--exemplar-label": parsed}
    assert invoke("synthesize", given).exit_code == 0
    result = invoke("synthesize", synthesize_options(files, tmp_path / "out.png") | {"--exemplar-label": None})
    assert result.exit_code == 0, result.output
    assert np.array_equal(read_png(tmp_path / "out.png"), read_png(tmp_path / "given.png"))


def test_interpolation_endpoints_are_the_single_exemplar_outputs(files, tmp_path):
    result = invoke("interpolate", interpolate_options(files, tmp_path / "mix.png") | {"--steps": 3})
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.glob("mix*")) == ["mix_00.png", "mix_01.png", "mix_02.png"]
    start, middle, end = (read_png(tmp_path / f"mix_0{i}.png") for i in range(3))
    with_a, with_b = synthesized(files, tmp_path, "a"), synthesized(files, tmp_path, "b")
    assert_equal_up_to_rounding(start, with_a)
    assert_equal_up_to_rounding(end, with_b)
    assert np.abs(middle.astype(int) - with_a).mean() > 1 and np.abs(middle.astype(int) - with_b).mean() > 1


@pytest.mark.parametrize(("t", "exemplar"), [(0.0, "a"), (1.0, "b")])
def test_a_single_t_at_an_end_is_that_exemplars_output(files, tmp_path, t, exemplar):
    result = invoke("interpolate", interpolate_options(files, tmp_path / "one.png") | {"--t": t})
    assert result.exit_code == 0, result.output
    assert [p.name for p in tmp_path.iterdir()] == ["one.png"]
    assert_equal_up_to_rounding(read_png(tmp_path / "one.png"), synthesized(files, tmp_path, exemplar))


def test_spatial_interpolation_has_a_on_the_left_and_b_on_the_right(files, tmp_path):
    result = invoke("interpolate", interpolate_options(files, tmp_path / "ramp.png") | {"--spatial": True})
    assert result.exit_code == 0, result.output
    ramp = read_png(tmp_path / "ramp.png").astype(int)
    with_a, with_b = synthesized(files, tmp_path, "a"), synthesized(files, tmp_path, "b")
    left, right = slice(0, 14), slice(42, 56)  # outer quarters of the 56 px width
    assert np.abs(ramp[:, left] - with_a[:, left]).mean() < np.abs(ramp[:, left] - with_b[:, left]).mean()
    assert np.abs(ramp[:, right] - with_b[:, right]).mean() < np.abs(ramp[:, right] - with_a[:, right]).mean()


def test_extrapolation_has_the_large_label_maps_size_and_one_patch_is_plain_synthesis(files, tmp_path):
    large = tmp_path / "large.png"
    write_label_map(large, blocky_labels(64, 96, 3))
    options = synthesize_options(files, tmp_path / "wide.png") | {"--label": large}
    result = invoke("extrapolate", options | {"--positions": 2})
    assert result.exit_code == 0, result.output
    assert read_png(tmp_path / "wide.png").shape == (64, 96, 3)
    square = tmp_path / "square.png"  # a 32 px label map and a 32 px patch: one patch, no blending
    write_label_map(square, blocky_labels(32, 32, 4))
    square_options = synthesize_options(files, tmp_path / "patch.png") | {"--label": square, "--patch": 32}
    assert invoke("extrapolate", square_options).exit_code == 0
    square_options = synthesize_options(files, tmp_path / "plain.png") | {"--label": square}
    assert invoke("synthesize", square_options).exit_code == 0
    assert_equal_up_to_rounding(read_png(tmp_path / "patch.png"), read_png(tmp_path / "plain.png"))


def test_attention_maps_are_fig_6_per_scale_and_normalized_attention(files, tmp_path):
    options = synthesize_options(files, tmp_path / "out.png") | {"--attention": tmp_path / "attention"}
    result = invoke("synthesize", options)
    assert result.exit_code == 0, result.output
    names = {"attention_scale0.png", "attention_scale1.png", "attention_scale2.png", "attention.npz"}
    assert {p.name for p in (tmp_path / "attention").iterdir()} == names
    maps = np.load(tmp_path / "attention" / "attention.npz")
    for scale, k in enumerate(SMOKE.attention_maps):
        alpha, beta, gate = maps[f"alpha_{scale}"], maps[f"beta_{scale}"], maps[f"gate_{scale}"]
        assert alpha.shape == (k, 32 >> scale, 48 >> scale) and beta.shape == (k, 40 >> scale, 56 >> scale)
        np.testing.assert_allclose(alpha.sum(axis=(1, 2)), 1, rtol=1e-5)  # Eq. 4: over exemplar positions
        np.testing.assert_allclose(beta.sum(axis=0), 1, rtol=1e-5)  # Eq. 7: over the K maps
        assert gate.shape == (k,) and ((0 < gate) & (gate < 1)).all()  # Eq. 6
