"""Where the `parser` stage's time goes: `train_parser` then `evaluate_parser` on a scenes table, as the
stage runs them, split into data loading, the network's forward passes, the rest of training
(backward, optimizer, precise BN's bookkeeping) and the rest of evaluation (inference's upsampling,
argmax, the metrics).

Run from a built repository (the table's image and label paths are relative to --root):
  .venv/bin/python benchmarks/parser_stage.py [--params params.yaml] [--scenes data/interim/scenes.parquet]
      [--root .] [--epochs 1] [--max-scenes 300] [--device cpu|cuda] [--malloc-default] [--save parser.pt]
Like the stage, it first makes malloc keep freed memory (`egsynth.memory.keep_freed_memory`);
--malloc-default leaves malloc as it is, to measure what that saves. Each phase is reported in wall
seconds and in this process's CPU seconds (user + system, all threads): on a machine shared with other
jobs the CPU seconds are the steadier measure (`OMP_NUM_THREADS=1` steadier still). Then the page faults
and peak resident memory of the whole run. The weights' SHA-256 and the scores (printed exactly) show
whether two runs train the same parser bit for bit.
"""

from __future__ import annotations

import argparse
import hashlib
import resource
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import torch

from egsynth.config import load_params
from egsynth.devices import default_device
from egsynth.memory import keep_freed_memory
from egsynth.parsing import Parser, evaluate_parser, save_parser
from egsynth.parsing import data as parsing_data
from egsynth.parsing import metrics as parsing_metrics
from egsynth.parsing import parser as parsing_parser


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class PhaseTimer:
    """Wall and CPU seconds per named phase; nested phases are subtracted from the one around them."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)
        self._stack: list[list] = []  # [name, wall start, cpu start, wall of nested, cpu of nested]

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self._stack.append([name, time.perf_counter(), cpu_seconds(), 0.0, 0.0])
        try:
            yield
        finally:
            _, wall_start, cpu_start, nested_wall, nested_cpu = self._stack.pop()
            wall, cpu = time.perf_counter() - wall_start, cpu_seconds() - cpu_start
            self.wall[name] += wall - nested_wall
            self.cpu[name] += cpu - nested_cpu
            if self._stack:
                self._stack[-1][3] += wall
                self._stack[-1][4] += cpu

    def timed(self, name: str, function: Callable) -> Callable:
        def wrapper(*args, **kwargs):
            with self.phase(name):
                return function(*args, **kwargs)

        return wrapper


def instrument(timer: PhaseTimer, stage: list[str]) -> None:
    """Time every dataset item, and the network's forward passes per stage (train or evaluate)."""
    parsing_data.SceneDataset.__getitem__ = timer.timed("data: train items", parsing_data.SceneDataset.__getitem__)
    parsing_parser.read_image = timer.timed("data: evaluate images", parsing_parser.read_image)
    parsing_metrics.read_label_map = timer.timed("data: evaluate labels", parsing_metrics.read_label_map)
    build_parser = parsing_parser.build_parser

    def timed_build(*args, **kwargs) -> torch.nn.Module:
        model = build_parser(*args, **kwargs)
        forward = model.forward
        model.forward = lambda *a, **k: timer.timed(f"forward: {stage[0]}", forward)(*a, **k)
        return model

    parsing_parser.build_parser = timed_build


def weights_digest(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", default="params.yaml", help="its parser section, but --epochs")
    parser.add_argument("--scenes", default="data/interim/scenes.parquet")
    parser.add_argument("--root", default=".", help="the directory the table's image and label paths are relative to")
    parser.add_argument("--epochs", type=int, default=None, help="default: the params file's")
    parser.add_argument("--max-scenes", type=int, default=None, help="at most this many scenes of each split")
    parser.add_argument("--device", default=None, help="default: CUDA when present, else the CPU")
    parser.add_argument("--malloc-default", action="store_true", help="do not call keep_freed_memory")
    parser.add_argument("--save", type=Path, default=None, help="write the trained parser here (save_parser)")
    args = parser.parse_args()

    config = load_params(args.params).parser
    if args.epochs is not None:
        config = config.model_copy(update={"epochs": args.epochs})
    scenes = pd.read_parquet(args.scenes)
    for column in ("image_path", "label_path"):
        scenes[column] = [str(Path(args.root) / path) for path in scenes[column]]
    if args.max_scenes is not None:
        scenes = scenes.groupby("split", sort=False).head(args.max_scenes)
    test = scenes[scenes["split"] == "test"]
    device = torch.device(args.device) if args.device else default_device()

    kept = False if args.malloc_default else keep_freed_memory()
    timer, stage = PhaseTimer(), ["train"]
    instrument(timer, stage)
    with timer.phase("training: backward, optimizer, the rest"):
        model, history = parsing_parser.train_parser(config, scenes, device=device)
    stage[0] = "evaluate"
    parsed = Parser(
        label=parsing_parser.trained_label(config.architecture),
        source="train",
        model=model,
        architecture=config.architecture,
        image_size=config.image_size,
    )
    with timer.phase("evaluation: upsampling, argmax, metrics"):
        scores = evaluate_parser(parsed.parse, test, batch_size=config.batch_size)
    if args.save is not None:
        save_parser(parsed, args.save)

    print(
        f"{config.architecture} at {config.image_size} px, {config.epochs} epochs, batch {config.batch_size}: "
        f"{history['train_images']} train and {len(test)} test scenes on {device}, {torch.get_num_threads()} threads, "
        f"malloc keeps freed memory: {kept}"
    )
    print(f"{'phase':<42} {'wall s':>8} {'cpu s':>8} {'cpu %':>6}")
    total_cpu = sum(timer.cpu.values())
    for name in sorted(timer.wall):
        print(f"{name:<42} {timer.wall[name]:8.2f} {timer.cpu[name]:8.2f} {100 * timer.cpu[name] / total_cpu:6.1f}")
    print(f"{'total':<42} {sum(timer.wall.values()):8.2f} {total_cpu:8.2f}")
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(f"minor page faults {usage.ru_minflt}, peak resident memory {usage.ru_maxrss / 1024:.0f} MiB")
    print(f"epoch_loss {history['epoch_loss']!r}")
    print(f"miou {scores['miou']!r} pixel_accuracy {scores['pixel_accuracy']!r}")
    print(f"weights sha256 {weights_digest(model)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
