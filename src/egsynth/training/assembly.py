"""What a GAN run trains and trains with, built in one place: G, D and the VGG term of L_spade (Eq. 11).

The `train@VARIANT` stage and the benchmarks call `build_training`, so they train the same networks:
G of the variant from the model params, started from the `pretrain` stage's weights when given
(appendix G), D from the train params, and SPADE's VGG perceptual loss over a frozen VGG-19 from
`model.backbone`. Each network is seeded from its params, whatever the global RNG holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from egsynth.config import ModelConfig, TrainConfig
from egsynth.data.cocostuff import NUM_CLASSES
from egsynth.losses import VGGPerceptualLoss
from egsynth.models.discriminator import MultiscaleDiscriminator, build_discriminator
from egsynth.models.features import VGGFeatures
from egsynth.models.generator import Generator, build_generator
from egsynth.training.pretrain import PretrainedLoad, initialize_from_pretraining, load_pretrained


@dataclass(frozen=True)
class TrainingModules:
    generator: Generator  # G, on the CPU until `train_gan` moves it
    discriminator: MultiscaleDiscriminator  # D, on the CPU until `train_gan` moves it
    perceptual: VGGPerceptualLoss  # the VGG term of L_spade, its VGG-19 already on the device
    pretrained: PretrainedLoad  # what G took from the pretraining file (nothing without one)


def build_training(
    variant: str,
    *,
    model: ModelConfig,  # G's architecture, its seed and the VGG-19 backbone (perceptual loss too)
    train: TrainConfig,  # D's size and seed
    device: torch.device,  # where the perceptual loss's VGG-19 runs
    pretrained: Path | None = None,  # a file of `save_pretrained` (models/pretrain.pt); None: G as initialized
    num_classes: int = NUM_CLASSES,  # C, the label maps' channels
) -> TrainingModules:
    """G, D and the perceptual loss of one training run; what of `pretrained` did not load is in `.pretrained`."""
    generator = build_generator(variant, model, num_classes=num_classes)
    report = PretrainedLoad(loaded=[], not_loaded={})
    if pretrained is not None:
        report = initialize_from_pretraining(generator, load_pretrained(pretrained))
    vgg = VGGFeatures(backbone=model.backbone, seed=model.seed, num_scales=model.num_scales)
    vgg.to(device)  # the loss holds a bound method, not the module: `perceptual.to` cannot move it
    return TrainingModules(
        generator=generator,
        discriminator=build_discriminator(train, num_classes=num_classes),
        perceptual=VGGPerceptualLoss(layers=vgg.perceptual_layers),
        pretrained=report,
    )
