"""Tiny GAN training setups for tests/test_training.py and tests/test_training_checkpoints.py, and the two
out-of-process runs they need.

- `run_and_save(CHECKPOINT, OUT, sleep)`: trains the tiny resumable run (resuming from CHECKPOINT when
  it exists) and saves the final G and D weights to OUT; the checkpoints' test SIGKILLs a forked process running it
  midway, then resumes it in a fresh interpreter, `python tests/_training_worker.py CHECKPOINT OUT`.
- `ddp_worker(rank, world_size, port, out)`: one rank of a 2-process gloo DDP run, forked by the test.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

if __name__ == "__main__":  # run as a script: make `egsynth` and `tests` importable like under pytest
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from egsynth.config import ModelConfig, TrainConfig
from egsynth.losses import VGGPerceptualLoss
from egsynth.models.discriminator import build_discriminator
from egsynth.models.generator import build_generator
from egsynth.models.variants import VARIANTS
from egsynth.training import EpochData, train_gan

NUM_CLASSES = 5
PATCH = 16
GLOBAL = 24
VAE_PATCH = 40  # spade_vae's style encoder (5 stride-2 convs + instance norm) needs images larger than 32 px


def sizes(variant: str) -> tuple[int, int]:
    """(patch, global) image sizes of the tiny setup for `variant`."""
    return (VAE_PATCH, VAE_PATCH + 8) if VARIANTS[variant].vae else (PATCH, GLOBAL)


def tiny_model(norm: str = "instance") -> ModelConfig:
    return ModelConfig(
        num_scales=1,
        attention_maps=(2, 2),
        image_channels=4,
        label_channels=4,
        ngf=4,
        spade_hidden=4,
        style_dim=4,
        dense_attention_side=8,
        norm=norm,
    )


def tiny_train(**overrides) -> TrainConfig:
    values = dict(batch_size=2, generator_every=1, checkpoint_every=2, ndf=4, num_discriminators=2, lr=2e-4)
    return TrainConfig(**(values | overrides))


class SceneItems(Dataset):
    """Deterministic synthetic items: blocky one-hot labels, images in [-1, 1]; `nan_items` hold NaN targets."""

    def __init__(self, count: int, size: int, *, seed: int, self_reconstruction: bool = False, nan_items=()):
        self.count, self.size, self.seed = count, size, seed
        self.self_reconstruction = self_reconstruction
        self.nan_items = set(nan_items)

    def __len__(self) -> int:
        return self.count

    def _labels(self, generator: torch.Generator) -> torch.Tensor:
        coarse = torch.randint(0, NUM_CLASSES, (1, 1, 4, 4), generator=generator).float()
        ids = F.interpolate(coarse, size=(self.size, self.size), mode="nearest").long()[0, 0]
        return F.one_hot(ids, NUM_CLASSES).permute(2, 0, 1).float()  # [C, P, P]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        generator = torch.Generator().manual_seed(self.seed * 1000 + index)
        target = torch.rand(3, self.size, self.size, generator=generator) * 2 - 1
        labels = self._labels(generator)
        if self.self_reconstruction:
            exemplar, exemplar_labels = target, labels
        else:
            exemplar = torch.rand(3, self.size, self.size, generator=generator) * 2 - 1
            exemplar_labels = self._labels(generator)
        if index in self.nan_items:
            target = torch.full_like(target, float("nan"))
        return {
            "target": target,
            "target_labels": labels,
            "exemplar": exemplar,
            "exemplar_labels": exemplar_labels,
            "image_id": torch.tensor(index),
        }


class TinyPerceptualLayers(nn.Module):
    """A frozen, seeded 5-level conv stack standing in for VGG-19's relu_x_1 layers."""

    def __init__(self):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(123)
            self.convs = nn.ModuleList(nn.Conv2d(3 if i == 0 else 4, 4, 3, padding=1) for i in range(5))
        self.requires_grad_(False)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        features, h = [], image
        for i, conv in enumerate(self.convs):
            h = F.relu(conv(h if i == 0 else F.avg_pool2d(h, 2, ceil_mode=True)))
            features.append(h)
        return features


def build(variant: str, *, norm: str = "instance", train: TrainConfig | None = None):
    """(G, D, perceptual) for the tiny setup, each deterministic."""
    train = train or tiny_train()
    generator = build_generator(variant, tiny_model(norm), num_classes=NUM_CLASSES)
    return (
        generator,
        build_discriminator(train, num_classes=NUM_CLASSES),
        VGGPerceptualLoss(layers=TinyPerceptualLayers()),
    )


def two_phase_epochs(variant: str, cross_items: int = 8, global_items: int = 4) -> list[EpochData]:
    """Phase 1: the cross task only; phase 2: cross plus global self-reconstruction."""
    patch, global_size = sizes(variant)
    return [
        EpochData(cross=SceneItems(cross_items, patch, seed=1)),
        EpochData(
            cross=SceneItems(cross_items, patch, seed=2),
            global_=SceneItems(global_items, global_size, seed=3, self_reconstruction=True),
        ),
    ]


def params_of(variant: str, train: TrainConfig) -> dict:
    return {"variant": variant, "model": tiny_model().model_dump(mode="json"), "train": train.model_dump(mode="json")}


def weights(*modules: nn.Module) -> dict[str, torch.Tensor]:
    return {f"{i}.{k}": v.detach().clone() for i, m in enumerate(modules) for k, v in m.state_dict().items()}


# ----------------------------------------------------------------------------
# the resumable run (killed, then resumed, by the test)

RESUMABLE_VARIANT = "spade_vae"  # draws noise each step (torch.randn_like), so RNG restoring is exercised
RESUMABLE_TRAIN = dict(generator_every=2, checkpoint_every=1)
SLOW_FROM = 5
"""With --sleep, steps from this one on are slowed down, so the test can kill the run in phase 2
(epoch 1, where the global batches cycle) between two checkpoints."""


def resumable_run(checkpoint: Path, *, sleep: float = 0.0):
    train = tiny_train(**RESUMABLE_TRAIN)
    generator, discriminator, perceptual = build(RESUMABLE_VARIANT, train=train)
    result = train_gan(
        generator=generator,
        discriminator=discriminator,
        perceptual=perceptual,
        epochs=two_phase_epochs(RESUMABLE_VARIANT),
        config=train,
        variant=RESUMABLE_VARIANT,
        checkpoint_path=checkpoint,
        params=params_of(RESUMABLE_VARIANT, train),
        device="cpu",
        on_step=(lambda step, losses: time.sleep(sleep if step >= SLOW_FROM else 0.0)),
        progress=False,
    )
    return result, weights(generator, discriminator)


def run_and_save(checkpoint: Path, out: Path, sleep: float = 0.0) -> None:
    """The tiny resumable run on one thread (resuming from `checkpoint` when it exists); its final weights to `out`."""
    torch.set_num_threads(1)
    result, final = resumable_run(checkpoint, sleep=sleep)
    torch.save({"weights": final, "resumed_from": result.resumed_from, "steps": result.steps}, out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    run_and_save(args.checkpoint, args.out)


# ----------------------------------------------------------------------------
# DDP

DDP_VARIANT = "full"


def ddp_train() -> TrainConfig:
    return tiny_train(batch_size=4, generator_every=1, checkpoint_every=100)


def ddp_epochs() -> list[EpochData]:
    """One iteration: a cross batch of 4 and a global batch of 4."""
    return [
        EpochData(cross=SceneItems(4, PATCH, seed=4), global_=SceneItems(4, GLOBAL, seed=5, self_reconstruction=True))
    ]


def ddp_run(checkpoint: Path, device: str = "cpu"):
    train = ddp_train()
    generator, discriminator, perceptual = build(DDP_VARIANT, train=train)
    result = train_gan(
        generator=generator,
        discriminator=discriminator,
        perceptual=perceptual,
        epochs=ddp_epochs(),
        config=train,
        variant=DDP_VARIANT,
        checkpoint_path=checkpoint,
        params=params_of(DDP_VARIANT, train),
        device=device,
        progress=False,
    )
    return result, weights(generator, discriminator)


def ddp_worker(rank: int, world_size: int, port: int, out: str) -> None:
    from egsynth.training import destroy_distributed, init_distributed

    torch.set_num_threads(1)
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    ctx = init_distributed()
    try:
        result, final = ddp_run(Path(out) / "ddp.pt", device=str(ctx.device))
        if ctx.is_main:
            torch.save({"weights": final, "losses": result.losses}, Path(out) / "ddp_weights.pt")
    finally:
        destroy_distributed()


if __name__ == "__main__":
    main()
