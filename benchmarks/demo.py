"""Seconds per answer of `egsynth demo` at the default size (params' manifest.image_size), on this machine.

- synthesis: `Demo.synthesize` (each input read and checked as the CLI does, the generator pass) and the page's
  answer (`server.synthesis_json`: the output and the inputs as PNGs);
- click: `Demo.explain` (every scale's attention for one pixel, its overlay and class shares) and its answer;
- slider: `Demo.mix` at t = 0.5 and its answer.
Each is timed `--repeats` times after one untimed warm-up; the median and the slowest are printed.

Run: .venv/bin/python benchmarks/demo.py [--params params.yaml] [--model models/full/generator.pt] [--repeats 20]

Without the model file, the params' `full` generator is built with its seeded initial weights: the time depends
on the architecture and the size, not on the weights. The scenes are procedural ones of that size.
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from egsynth.config import load_params
from egsynth.data import procedural
from egsynth.demo import server
from egsynth.demo.core import SCENE_FILES, SCENES_TASK, Demo, list_scenes
from egsynth.models.generator import build_generator, save_generator
from egsynth.parsing.data import write_label_map


def make_scenes(eval_dir: Path, size: int, count: int) -> None:
    for seed in range(count):
        layout = procedural.sample_layout(seed, "outdoor")
        labels = procedural.rasterize(layout, size, size).labels
        photo = procedural.render(layout, procedural.sample_style(seed), seed, size, size)
        labels_path, photo_path, photo_labels_path = (eval_dir / SCENES_TASK / f"{seed:012d}" / f for f in SCENE_FILES)
        write_label_map(labels_path, labels)
        Image.fromarray(photo).save(photo_path)
        write_label_map(photo_labels_path, labels)


def timed(work, repeats: int) -> list[float]:
    work()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        seconds.append(time.perf_counter() - start)
    return seconds


def report(name: str, seconds: list[float]) -> None:
    print(f"{name}: median {statistics.median(seconds):.3f} s, slowest {max(seconds):.3f} s ({len(seconds)} runs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--model", type=Path, default=Path("models/full/generator.pt"))
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    params = load_params(args.params)
    size = params.manifest.image_size
    with tempfile.TemporaryDirectory() as root:
        model, weights = args.model, "trained"
        if not model.is_file():
            model, weights = Path(root) / "generator.pt", "initial"
            save_generator(build_generator("full", params.model), params.model, model)
        make_scenes(Path(root) / "eval", size, 3)
        demo = Demo(
            models={"full": model},
            default_model="full",
            parser=Path(root) / "no-parser.pt",
            scenes=list_scenes(Path(root) / "eval"),
            device=torch.device("cpu"),
        )
        a, b, c = list(demo.scenes)
        print(f"{size}x{size}, {args.params}'s full generator ({weights} weights), {torch.get_num_threads()} threads")
        report("synthesis", timed(lambda: server.synthesis_json(demo.synthesize("full", a, b)), args.repeats))
        kept = demo.synthesize("full", a, b).id  # after the syntheses above, which push older ones out
        click = timed(lambda: server.attention_json(demo.explain(kept, x=size // 2, y=size // 2)), args.repeats)
        report("click", click)
        report("slider", timed(lambda: demo.mix(kept, c, None, 0.5), args.repeats))


if __name__ == "__main__":
    main()
