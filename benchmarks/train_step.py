"""Seconds per GAN training step and images per second, per variant, at a params file's sizes.

Synthetic data of the manifest's sizes (patch pairs in phase 1; plus global images in phase 2);
every step updates D, every `train.generator_every`-th step also G, so a run of that many steps
is one full cycle: one untimed cycle warms up, the next two are timed.
Run: .venv/bin/python benchmarks/train_step.py [--params params.yaml]
[--variants full gap] [--phase 1] [--device cpu|cuda]
"""

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import Dataset

from egsynth.config import load_params
from egsynth.data.cocostuff import NUM_CLASSES
from egsynth.devices import default_device
from egsynth.training import EpochData, train_gan
from egsynth.training.assembly import build_training


class RandomPairs(Dataset):
    """Deterministic random pairs of one size: images in [-1, 1], blocky one-hot labels."""

    def __init__(self, count: int, size: int):
        self.count, self.size = count, size

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(index)
        ids = torch.randint(0, NUM_CLASSES, (self.size // 8, self.size // 8), generator=generator)
        labels = torch.nn.functional.one_hot(ids.repeat_interleave(8, 0).repeat_interleave(8, 1), NUM_CLASSES)
        image = torch.rand(3, self.size, self.size, generator=generator) * 2 - 1
        one_hot = labels.permute(2, 0, 1).float()
        return {
            "target": image,
            "target_labels": one_hot,
            "exemplar": image.flip(-1),
            "exemplar_labels": one_hot,
            "image_id": index,
        }


def seconds_per_step(params, variant: str, phase: int, device: torch.device) -> float:
    """Mean seconds of the steps after a first, untimed cycle of `generator_every` steps (warm-up:
    allocator, cuDNN autotuning, DataLoader start), over two more cycles."""
    cycle = params.train.generator_every
    steps = 3 * cycle
    count = steps * params.train.batch_size
    cross = RandomPairs(count, params.manifest.patch_size)
    global_ = RandomPairs(count, params.manifest.image_size) if phase == 2 else None
    model = params.model.model_copy(update={"backbone": "random"})
    modules = build_training(variant, model=model, train=params.train, device=device)
    stamps: dict[int, float] = {}
    with tempfile.TemporaryDirectory() as scratch:
        train_gan(
            generator=modules.generator,
            discriminator=modules.discriminator,
            perceptual=modules.perceptual,
            epochs=[EpochData(cross=cross, global_=global_)],
            config=params.train.model_copy(update={"checkpoint_every": 10**9}),
            variant=variant,
            checkpoint_path=Path(scratch) / "checkpoint.pt",
            params={},
            device=device,
            on_step=lambda step, _losses: stamps.__setitem__(step, time.perf_counter()),
            progress=False,
        )
    return (stamps[steps] - stamps[cycle]) / (steps - cycle)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--variants", nargs="+", default=["full", "gap"])
    parser.add_argument("--phase", type=int, choices=(1, 2), default=1)
    parser.add_argument("--batch-size", type=int, help="overrides train.batch_size (per device)")
    parser.add_argument("--device", default=str(default_device()))
    args = parser.parse_args()
    params = load_params(args.params)
    if args.batch_size:
        params = params.model_copy(update={"train": params.train.model_copy(update={"batch_size": args.batch_size})})
    device = torch.device(args.device)
    times = {}
    for variant in args.variants:
        times[variant] = seconds_per_step(params, variant, args.phase, device)
        images = params.train.batch_size * (2 if args.phase == 2 else 1) / times[variant]
        print(
            f"{args.params} phase {args.phase} {variant:>14}: {times[variant]:.3f} s/step, {images:.1f} images/s "
            f"(batch {params.train.batch_size}, patch {params.manifest.patch_size}, {device}, "
            f"{torch.get_num_threads()} threads)"
        )
    if "full" in times and "gap" in times:
        print(f"full / gap step time: {times['full'] / times['gap']:.2f}")


if __name__ == "__main__":
    main()
