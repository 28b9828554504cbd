"""What the synthesis command tests share: a tiny untrained generator and parser (smoke preset's model), label maps
and exemplars, the bad files that stand in for them, and the commands run in this process."""

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from egsynth.cli import app
from egsynth.config import load_params
from egsynth.data.cocostuff import category
from egsynth.models.generator import build_generator, save_generator
from egsynth.parsing.data import write_label_map
from egsynth.parsing.parser import Parser, build_parser, save_parser

SMOKE = load_params(Path(__file__).resolve().parents[1] / "configs" / "smoke.yaml").model
SKY, GRASS, SEA, TREE = (category(name).label_value for name in ("sky-other", "grass", "sea", "tree"))
UNLABELED = 255
runner = CliRunner()


def assert_equal_up_to_rounding(a: np.ndarray, b: np.ndarray) -> None:
    """Two computations of the same image, equal in exact arithmetic, may differ by ~1e-6 in float32 and so,
    rarely, by one 8-bit level where a value sits at a rounding boundary; anything else is a real difference."""
    difference = np.abs(a.astype(int) - b.astype(int))
    assert a.shape == b.shape and difference.max() <= 1 and (difference > 0).mean() < 1e-3


def blocky_labels(height: int, width: int, seed: int) -> np.ndarray:
    """stuffthingmaps values [H, W]: 8 px blocks of sky, grass, sea, tree and unlabeled."""
    rng = np.random.default_rng(seed)
    coarse = rng.choice([SKY, GRASS, SEA, TREE, UNLABELED], size=(-(-height // 8), -(-width // 8)))
    return np.kron(coarse, np.ones((8, 8), dtype=np.uint8))[:height, :width].astype(np.uint8)


def photo(height: int, width: int, tint: tuple[int, int, int], seed: int) -> np.ndarray:
    """uint8 RGB [H, W, 3]: a tint with noise, so that two exemplars have clearly different styles."""
    noise = np.random.default_rng(seed).normal(0, 30, size=(height, width, 3))
    return np.clip(np.array(tint) + noise, 0, 255).astype(np.uint8)


def write_png16_rgb(path: Path, pixels: np.ndarray) -> Path:
    """A 48-bit RGB PNG (Pillow cannot write one, and reads it back as 8-bit mode RGB)."""
    height, width, _ = pixels.shape
    rows = b"".join(b"\x00" + pixels[y].astype(">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)  # 16 bits, truecolor
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    )
    return path


def save_model(path: Path, variant: str = "full", *, num_classes: int | None = None) -> Path:
    extra = {} if num_classes is None else {"num_classes": num_classes}
    save_generator(build_generator(variant, SMOKE, **extra), SMOKE, path, **extra)
    return path


def read_png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def png_claiming(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose header declares `width` x `height` 8-bit grayscale pixels (its data is empty)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    )
    return path


@dataclass(frozen=True)
class Files:
    root: Path
    model: Path  # full variant
    gap_model: Path
    few_classes_model: Path  # knows 8 classes (COCO-stuff's first things), not sky or grass
    parser: Path  # an untrained network parser
    oracle_parser: Path
    label: Path  # 40 x 56
    exemplar_a: Path  # 32 x 48, warm
    labels_a: Path
    exemplar_b: Path  # 48 x 40, cool
    labels_b: Path


def write_files(root: Path) -> Files:
    """The models, parsers, label map and exemplars the synthesis tests run on, written under `root`."""
    parser = Parser(
        label="lraspp-untrained",
        source="train",
        model=build_parser("lraspp_mobilenet_v3_large").eval(),
        architecture="lraspp_mobilenet_v3_large",
        image_size=32,
    )
    save_parser(parser, root / "parser.pt")
    save_parser(Parser(label="oracle", source="oracle"), root / "oracle.pt")
    for name, pixels in (("a.png", photo(32, 48, (220, 140, 60), 1)), ("b.png", photo(48, 40, (40, 90, 200), 2))):
        Image.fromarray(pixels).save(root / name)
    write_label_map(root / "label.png", blocky_labels(40, 56, 0))
    write_label_map(root / "a_labels.png", blocky_labels(32, 48, 1))
    write_label_map(root / "b_labels.png", blocky_labels(48, 40, 2))
    return Files(
        root=root,
        model=save_model(root / "full.pt"),
        gap_model=save_model(root / "gap.pt", "gap"),
        few_classes_model=save_model(root / "few.pt", num_classes=8),
        parser=root / "parser.pt",
        oracle_parser=root / "oracle.pt",
        label=root / "label.png",
        exemplar_a=root / "a.png",
        labels_a=root / "a_labels.png",
        exemplar_b=root / "b.png",
        labels_b=root / "b_labels.png",
    )


def invoke(command: str, options: dict[str, object]):
    """Run `egsynth COMMAND` in this process; an option valued None is left out, True is a flag."""
    args = [command]
    for name, value in options.items():
        if value is True:
            args.append(name)
        elif value is not None:
            args += [name, str(value)]
    return runner.invoke(app, args)


def synthesize_options(files: Files, output: Path, exemplar: str = "a") -> dict[str, object]:
    image, labels = (files.exemplar_a, files.labels_a) if exemplar == "a" else (files.exemplar_b, files.labels_b)
    return {
        "--label": files.label,
        "--exemplar": image,
        "--exemplar-label": labels,
        "--model": files.model,
        "--parser": files.parser,
        "--device": "cpu",
        "-o": output,
    }


def interpolate_options(files: Files, output: Path) -> dict[str, object]:
    return {
        "--label": files.label,
        "--exemplar-a": files.exemplar_a,
        "--exemplar-a-label": files.labels_a,
        "--exemplar-b": files.exemplar_b,
        "--exemplar-b-label": files.labels_b,
        "--model": files.model,
        "--device": "cpu",
        "-o": output,
    }


BAD_FILE_KINDS = ("missing", "empty", "truncated", "text", "huge header", "wrong mode")


def make_bad_file(kind: str, good: Path, directory: Path, *, label: bool) -> Path:
    """A bad stand-in for the good input file `good` (a label map when `label`, else an exemplar photo)."""
    path = directory / f"{kind.replace(' ', '_')}.png"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    elif kind == "text":
        path.write_text("sky, sea, grass\n")
    elif kind == "huge header":
        png_claiming(path, 8000, 8000)
    elif kind == "wrong mode":
        image = read_png(good)
        Image.fromarray(np.stack([image] * 3, axis=-1) if label else image).convert("RGB" if label else "RGBA").save(
            path
        )
    return path
