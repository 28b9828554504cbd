"""What tests/test_training.py and tests/test_training_checkpoints.py share: a tiny training run and the comparison
of weights."""

import torch

from egsynth.training import train_gan
from tests._training_worker import build, params_of, tiny_train


def run(variant, epochs, checkpoint, *, train=None, modules=None, **kwargs):
    train = train or tiny_train()
    generator, discriminator, perceptual = modules or build(variant, train=train)
    result = train_gan(
        generator=generator,
        discriminator=discriminator,
        perceptual=perceptual,
        epochs=epochs,
        config=train,
        variant=variant,
        checkpoint_path=checkpoint,
        params=kwargs.pop("params", params_of(variant, train)),
        device="cpu",
        progress=False,
        **kwargs,
    )
    return result, generator, discriminator


def changed(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> set[str]:
    return {k for k in before if not torch.equal(before[k], after[k])}
