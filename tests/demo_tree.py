"""A small tree laid out as the demo reads a repo after `make repro`: untrained generators of the smoke preset in
models/VARIANT/generator.pt and procedural scenes in data/eval/duplicating/ID/, made in seconds."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from egsynth.config import load_params
from egsynth.data import procedural
from egsynth.demo.core import SCENE_FILES, SCENES_TASK
from egsynth.models.generator import build_generator, save_generator
from egsynth.parsing.data import write_label_map

SMOKE = load_params(Path(__file__).resolve().parents[1] / "configs" / "smoke.yaml").model


@dataclass(frozen=True)
class DemoTree:
    root: Path
    models: Path  # models/
    eval_dir: Path  # data/eval/
    scenes: list[str]


def make_demo_tree(root: Path, *, size: int, scenes: int = 3, variants: tuple[str, ...] = ("full", "gap")) -> DemoTree:
    """Generators of `variants` with random weights, and `scenes` outdoor scenes of size x size: each scene's label
    map, its photo rendered in its own style, and the photo's labels (the ground truth, as an oracle parse)."""
    for variant in variants:
        path = root / "models" / variant / "generator.pt"
        path.parent.mkdir(parents=True)
        save_generator(build_generator(variant, SMOKE), SMOKE, path)
    names = []
    for seed in range(scenes):
        layout = procedural.sample_layout(seed, "outdoor")
        labels = procedural.rasterize(layout, size, size).labels
        photo = procedural.render(layout, procedural.sample_style(seed), seed, size, size)
        name = f"{seed:012d}"
        directory = root / "data" / "eval" / SCENES_TASK / name
        labels_path, photo_path, photo_labels_path = (directory / file for file in SCENE_FILES)
        write_label_map(labels_path, labels)
        Image.fromarray(photo).save(photo_path)
        write_label_map(photo_labels_path, labels)
        names.append(name)
    return DemoTree(root=root, models=root / "models", eval_dir=root / "data" / "eval", scenes=names)
