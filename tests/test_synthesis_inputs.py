"""`egsynth synthesize`, `interpolate` and `extrapolate` given bad input or an output they must refuse: one line
naming what is wrong, a non-zero exit, no traceback, and no file written, changed or lost."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from egsynth.cli import app
from egsynth.parsing.data import write_label_map
from tests._synthesis import (
    BAD_FILE_KINDS,
    blocky_labels,
    interpolate_options,
    invoke,
    make_bad_file,
    png_claiming,
    read_png,
    runner,
    synthesize_options,
    write_png16_rgb,
)

# ---------------------------------------------------------------------------------------------
# bad input: one line naming the file, a non-zero exit, no traceback, nothing lost


@pytest.fixture(scope="module")
def bad_inputs(files, tmp_path_factory) -> dict[str, tuple[str, dict[str, object], Path | str, str]]:
    """Case name -> (command, options changed from a good call, what the error names, what it says)."""
    bad = tmp_path_factory.mktemp("bad")
    corrupt = bad / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg" + bytes(range(256)))
    notes = bad / "notes.png"
    notes.write_text("a label map, honest\n")
    gray, rgba, gray16 = bad / "gray.png", bad / "rgba.png", bad / "gray16.png"
    Image.fromarray(read_png(files.exemplar_a)[..., 0]).save(gray)
    Image.fromarray(read_png(files.exemplar_a)).convert("RGBA").save(rgba)
    Image.fromarray(read_png(files.exemplar_a)[..., 0].astype(np.uint16) * 257).save(gray16)
    rgb16 = write_png16_rgb(bad / "rgb16.png", read_png(files.exemplar_a).astype(np.uint16) * 257)
    unknown_value = bad / "value_200.png"
    values = blocky_labels(40, 56, 0)
    values[:8, :8] = 200
    write_label_map(unknown_value, values)
    tiny = bad / "tiny.png"
    write_label_map(tiny, blocky_labels(4, 4, 0))
    random_bytes = bad / "random.pt"
    random_bytes.write_bytes(np.random.default_rng(0).bytes(512))
    other_params = bad / "other_params.pt"
    payload = torch.load(files.model, weights_only=True)
    payload["model"]["ngf"] = 2 * payload["model"]["ngf"]
    torch.save(payload, other_params)
    no_exemplar_label = {"--exemplar-label": None}
    return {
        "missing label map": ("synthesize", {"--label": bad / "nope.png"}, bad / "nope.png", "not found"),
        "missing exemplar": ("synthesize", {"--exemplar": bad / "nope.jpg"}, bad / "nope.jpg", "not found"),
        "corrupt exemplar": ("synthesize", {"--exemplar": corrupt}, corrupt, "not a readable image"),
        "text file as label map": ("synthesize", {"--label": notes}, notes, "not a readable image"),
        "grayscale exemplar": ("synthesize", {"--exemplar": gray}, gray, "8-bit grayscale"),
        "rgba exemplar": ("synthesize", {"--exemplar": rgba}, rgba, "RGBA"),
        "16-bit grayscale exemplar": ("synthesize", {"--exemplar": gray16}, gray16, "16-bit grayscale"),
        "16-bit rgb exemplar": ("synthesize", {"--exemplar": rgb16}, rgb16, "16 bits per channel"),
        "rgb image as label map": ("synthesize", {"--label": files.exemplar_a}, files.exemplar_a, "single-channel"),
        "label value of no class": ("synthesize", {"--label": unknown_value}, unknown_value, "[200]"),
        "class the model does not know": (
            "synthesize",
            {"--model": files.few_classes_model},
            files.label,
            "the model does not know (it has 8)",
        ),
        "exemplar label of another size": (
            "synthesize",
            {"--exemplar-label": files.labels_b},
            files.labels_b,
            "label map is 40x48 but its exemplar",
        ),
        "label map too small": ("synthesize", {"--label": tiny}, tiny, "at least 8 px per side"),
        "missing model": ("synthesize", {"--model": bad / "none.pt"}, bad / "none.pt", "generator file not found"),
        "corrupt model": ("synthesize", {"--model": random_bytes}, random_bytes, "not a readable torch file"),
        "parser as model": ("synthesize", {"--model": files.parser}, files.parser, "not a saved generator"),
        "model with other params": ("synthesize", {"--model": other_params}, other_params, "do not fit"),
        "missing parser": (
            "synthesize",
            no_exemplar_label | {"--parser": bad / "none.pt"},
            bad / "none.pt",
            "needed to parse",
        ),
        "oracle parser": (
            "synthesize",
            no_exemplar_label | {"--parser": files.oracle_parser},
            files.oracle_parser,
            "cannot parse",
        ),
        "attention of a model without msca": (
            "synthesize",
            {"--model": files.gap_model, "--attention": bad / "maps"},
            files.gap_model,
            "no MSCA attention",
        ),
        "style interpolation without msca": ("interpolate", {"--model": files.gap_model}, files.gap_model, "MSCA"),
        "attention directory is a file": (
            "synthesize",
            {"--attention": files.label},
            files.label,
            "is a file, not a directory",
        ),
        "unknown device": ("synthesize", {"--device": "gpu"}, "--device gpu", "not a torch device"),
        "t outside 0..1": ("interpolate", {"--t": 1.5}, "--t", "[0, 1]"),
        "one step": ("interpolate", {"--t": None, "--steps": 1}, "--steps", "at least 2"),
        "patch larger than the label map": (
            "extrapolate",
            {"--patch": 48},
            files.label,
            "smaller than the 48 px patch",
        ),
    }


BAD_CASES = [
    "missing label map",
    "missing exemplar",
    "corrupt exemplar",
    "text file as label map",
    "grayscale exemplar",
    "rgba exemplar",
    "16-bit grayscale exemplar",
    "16-bit rgb exemplar",
    "rgb image as label map",
    "label value of no class",
    "class the model does not know",
    "exemplar label of another size",
    "label map too small",
    "missing model",
    "corrupt model",
    "parser as model",
    "model with other params",
    "missing parser",
    "oracle parser",
    "attention of a model without msca",
    "attention directory is a file",
    "style interpolation without msca",
    "unknown device",
    "t outside 0..1",
    "one step",
    "patch larger than the label map",
]


def assert_one_line_error(result, named: Path | str, says: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and str(named) in line and says in line, line


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_is_one_line_naming_it_and_the_previous_output_survives(files, bad_inputs, tmp_path, case):
    command, changed, named, says = bad_inputs[case]
    out = tmp_path / "out"
    out.mkdir()
    output = out / "result.png"
    output.write_bytes(b"a good output from an earlier run")
    if command == "interpolate":
        good = interpolate_options(files, output) | {"--t": 0.5}
    else:
        good = synthesize_options(files, output)
    given = [path for path in changed.values() if isinstance(path, Path)]
    existed = [path.exists() for path in given]
    assert_one_line_error(invoke(command, good | changed), named, says)
    assert [p.name for p in out.iterdir()] == ["result.png"], "no partial or temporary file is left"
    assert output.read_bytes() == b"a good output from an earlier run"
    assert [path.exists() for path in given] == existed, "no path given was created (e.g. --attention) or removed"


def test_every_bad_case_built_is_run(bad_inputs):
    assert sorted(bad_inputs) == sorted(BAD_CASES)


@pytest.mark.parametrize(
    ("output", "says"),
    [("dir.png", "is a directory"), ("out.jpg", "ending in .png"), ("file.png/out.png", "is a file, not a directory")],
)
def test_an_output_path_that_cannot_take_a_png_is_refused_before_any_work(files, tmp_path, output, says):
    (tmp_path / "dir.png").mkdir()
    (tmp_path / "dir.png" / "keep.txt").write_text("kept")
    (tmp_path / "file.png").write_bytes(b"kept")
    result = invoke("synthesize", synthesize_options(files, tmp_path / output))
    assert_one_line_error(result, tmp_path / output, says)
    assert (tmp_path / "dir.png" / "keep.txt").read_text() == "kept" and (tmp_path / "file.png").read_bytes() == b"kept"


def test_every_command_explains_itself(files):
    for command in ("synthesize", "interpolate", "extrapolate"):
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0 and "--label" in result.output and "--model" in result.output


# ---------------------------------------------------------------------------------------------
# hardening: no command destroys a file, exhausts the machine or answers a bad file with a traceback


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under `root` with its bytes: what a failed command must leave exactly as it was."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


COMMAND_ROLES = [
    ("synthesize", "--label"),
    ("synthesize", "--exemplar"),
    ("interpolate", "--label"),
    ("interpolate", "--exemplar-a"),
    ("extrapolate", "--label"),
    ("extrapolate", "--exemplar"),
]


@pytest.mark.parametrize("kind", BAD_FILE_KINDS)
@pytest.mark.parametrize(("command", "role"), COMMAND_ROLES, ids=lambda x: x)
def test_every_command_answers_every_kind_of_bad_file_with_one_line_and_writes_nothing(
    files, tmp_path, command, role, kind
):
    inputs, out = tmp_path / "inputs", tmp_path / "out"
    inputs.mkdir()
    out.mkdir()
    if command == "interpolate":
        options = interpolate_options(files, out / "result.png") | {"--t": 0.5}
    else:
        options = synthesize_options(files, out / "result.png")
    for name, value in options.items():  # the command's input files, as copies whose bytes can be compared
        if isinstance(value, Path) and value.parent == files.root and name != "--parser":
            options[name] = Path(shutil.copy(value, inputs))
    bad = make_bad_file(kind, options[role], inputs, label=role == "--label")
    before = snapshot(inputs)
    result = invoke(command, options | {role: bad})
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and (result.exception is None or isinstance(result.exception, SystemExit))
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and str(bad) in line, line
    assert list(out.iterdir()) == [], "nothing written"
    assert snapshot(inputs) == before, "no input changed"


def test_a_label_map_of_8000x8000_is_refused_from_its_header_in_under_1_gib(files, tmp_path):
    huge = tmp_path / "huge.png"
    Image.new("L", (8000, 8000)).save(huge)  # 64 M pixels of class 0, about 80 KB on disk
    # the peak of the command's own address space (VmHWM starts afresh at exec; getrusage's ru_maxrss would
    # carry a large forking pytest's peak over). The header is checked before torch is imported (the CUDA build
    # alone peaks near 1.0 GiB), and decoding the map as the model reads it would need 44 GB
    child = (
        "import re, sys\n"
        "from egsynth.cli import app\n"
        "try:\n    app(sys.argv[1:])\n"
        "finally:\n"
        "    peak = re.search(r'VmHWM:\\s*(\\d+) kB', open('/proc/self/status').read()).group(1)\n"
        "    print(peak, 'torch' in sys.modules, file=sys.stderr)\n"
    )
    options = synthesize_options(files, tmp_path / "out.png") | {"--label": huge}
    args = [str(v) for name, value in options.items() for v in (name, value)]
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1] / "src"), *sys.path])}
    done = subprocess.run([sys.executable, "-c", child, "synthesize", *args], capture_output=True, text=True, env=env)
    *lines, last = done.stderr.strip().splitlines()
    peak_kib, torch_imported = last.split()
    assert done.returncode == 2 and len(lines) == 1 and "8000x8000 is larger than 1024 px a side" in lines[0], lines
    assert torch_imported == "False", "refused before torch is imported"
    assert int(peak_kib) < 1024 * 1024, f"peak resident memory {int(peak_kib) / 1024:.0f} MiB"
    assert not (tmp_path / "out.png").exists()


def test_a_decompression_bomb_header_is_one_line_for_a_label_map_as_for_an_exemplar(files, tmp_path):
    bomb = png_claiming(tmp_path / "bomb.png", 20000, 20000)
    for role in ("--label", "--exemplar"):
        result = invoke("synthesize", synthesize_options(files, tmp_path / "out.png") | {role: bomb})
        assert_one_line_error(result, bomb, "too large")
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("spelling", ["same", "dot-dot", "symlink"])
def test_an_output_that_is_one_of_the_inputs_is_refused_naming_both(files, tmp_path, spelling):
    out = tmp_path / "out"
    out.mkdir()
    label, exemplar = out / "lab.png", out / "ex.png"
    shutil.copyfile(files.label, label)
    shutil.copyfile(files.exemplar_a, exemplar)
    output = {"same": label, "dot-dot": out / ".." / "out" / "lab.png", "symlink": out / "link.png"}[spelling]
    if spelling == "symlink":
        output.symlink_to(label)
    before = snapshot(out)
    options = synthesize_options(files, output) | {"--label": label, "--exemplar": exemplar}
    assert_one_line_error(invoke("synthesize", options), output, f"is the input {label}")
    assert snapshot(out) == before


def test_an_output_dvc_tracks_is_refused(files, tmp_path):
    repo = tmp_path / "repo"
    (repo / ".dvc").mkdir(parents=True)
    case = repo / "data" / "eval" / "swap" / "1"
    case.mkdir(parents=True)
    shutil.copyfile(files.label, case / "labels.png")
    (repo / "dvc.lock").write_text("schema: '2.0'\nstages:\n  tasks:\n    cmd: x\n    outs:\n    - path: data/eval\n")
    (repo / "notes.png.dvc").write_text("outs:\n- path: notes.png\n")
    (repo / "notes.png").write_bytes(b"added with dvc add")
    before = snapshot(repo)
    for tracked, out in ((case / "painted.png", repo / "data" / "eval"), (repo / "notes.png", repo / "notes.png")):
        result = invoke("synthesize", synthesize_options(files, tracked))
        assert_one_line_error(result, tracked, f"DVC tracks {out}")
    assert snapshot(repo) == before


def test_a_failing_attention_write_leaves_neither_the_image_nor_any_map(files, tmp_path, monkeypatch):
    from egsynth.evaluation import figures

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(figures, "attention_maps", broken)
    options = synthesize_options(files, tmp_path / "out" / "y.png") | {"--attention": tmp_path / "out" / "maps"}
    assert_one_line_error(invoke("synthesize", options), tmp_path / "out", "No space left on device")
    assert not (tmp_path / "out").exists(), "no image, no map, no staging file, no directory made for them"


def test_an_interpolation_set_is_written_whole_or_not_at_all(files, tmp_path, monkeypatch):
    saved = []
    original = Image.Image.save

    def dies_on_the_third(image, fp, *args, **kwargs):
        saved.append(fp)
        if len(saved) == 3:
            raise OSError(5, "Input/output error")
        return original(image, fp, *args, **kwargs)

    monkeypatch.setattr(Image.Image, "save", dies_on_the_third)
    options = interpolate_options(files, tmp_path / "mix.png") | {"--steps": 4}
    assert_one_line_error(invoke("interpolate", options), tmp_path / "mix_02.png", "Input/output error")
    assert list(tmp_path.iterdir()) == []


def test_a_killed_runs_staging_folders_are_removed_by_the_next_write(files, tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".painted.png.{dead.stdout.strip()}-abc.tmp"
    stale.mkdir()
    (stale / "painted.png").write_bytes(b"half an image")
    live = tmp_path / f".painted.png.{os.getpid()}-xyz.tmp"  # a writer still running keeps its folder
    live.mkdir()
    result = invoke("synthesize", synthesize_options(files, tmp_path / "painted.png"))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name, "painted.png"]


@pytest.mark.parametrize(
    ("command", "option", "value", "says"),
    [
        ("interpolate", "--steps", 100000, "at most 100"),
        ("extrapolate", "--positions", -3, "between 0 and 100"),
        ("extrapolate", "--positions", 101, "between 0 and 100"),
        ("extrapolate", "--seed", -1, "between 0 and"),
        ("synthesize", "--max-side", 0, "between 8 and"),
    ],
)
def test_every_count_a_user_types_is_bounded(files, tmp_path, command, option, value, says):
    if command == "interpolate":
        good = interpolate_options(files, tmp_path / "o.png")
    else:
        good = synthesize_options(files, tmp_path / "o.png")
    assert_one_line_error(invoke(command, good | {option: value}), f"{option} {value}", says)
    assert list(tmp_path.iterdir()) == []


def test_a_missing_label_map_is_reported_before_the_model_loads(files, tmp_path, monkeypatch):
    from egsynth import synthesis

    def never(*args, **kwargs):
        raise AssertionError("the model was loaded before the inputs were checked")

    monkeypatch.setattr(synthesis, "load_generator", never)
    missing = tmp_path / "nope.png"
    assert_one_line_error(
        invoke("synthesize", synthesize_options(files, tmp_path / "o.png") | {"--label": missing}),
        missing,
        "file not found",
    )
