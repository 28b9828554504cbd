"""The library assembles a training run: G (pretrained where it can be), D and the perceptual loss."""

import torch

from egsynth.config import ModelConfig, TrainConfig
from egsynth.losses import VGGPerceptualLoss
from egsynth.models.discriminator import MultiscaleDiscriminator
from egsynth.training.assembly import build_training
from egsynth.training.pretrain import build_decoder, pretrained_state, save_pretrained

TINY = ModelConfig(num_scales=1, attention_maps=(2, 2), image_channels=4, label_channels=4, ngf=4, spade_hidden=4)
TRAIN = TrainConfig(ndf=4, num_discriminators=1)
CPU = torch.device("cpu")


def test_build_training_starts_g_from_the_pretraining_file_and_reports_what_it_could_not_take(tmp_path):
    source = build_training("full", model=TINY.model_copy(update={"seed": 3}), train=TRAIN, device=CPU)
    save_pretrained(source.generator, build_decoder(source.generator), tmp_path / "pretrain.pt")
    state = pretrained_state(source.generator)

    full = build_training("full", model=TINY, train=TRAIN, device=CPU, pretrained=tmp_path / "pretrain.pt")
    assert isinstance(full.discriminator, MultiscaleDiscriminator)
    assert isinstance(full.perceptual, VGGPerceptualLoss)
    assert full.pretrained.not_loaded == {} and set(full.pretrained.loaded) == set(state)
    assert all(torch.equal(full.generator.state_dict()[key], value) for key, value in state.items())

    gap = build_training("gap", model=TINY, train=TRAIN, device=CPU, pretrained=tmp_path / "pretrain.pt")
    assert gap.pretrained.not_loaded and all(key.startswith("aligners.") for key in gap.pretrained.not_loaded)


def test_without_a_pretraining_file_g_keeps_its_seeded_initialization():
    first = build_training("full", model=TINY, train=TRAIN, device=CPU)
    second = build_training("full", model=TINY, train=TRAIN, device=CPU)
    assert first.pretrained.loaded == [] and first.pretrained.not_loaded == {}
    for one, other in ((first.generator, second.generator), (first.discriminator, second.discriminator)):
        assert all(torch.equal(value, other.state_dict()[key]) for key, value in one.state_dict().items())
