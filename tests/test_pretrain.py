import pytest
import torch

from egsynth.config import ModelConfig
from egsynth.models.generator import build_generator
from egsynth.training.pretrain import (
    build_decoder,
    feature_reconstruction_loss,
    initialize_from_pretraining,
    pretrain,
    pretrained_state,
)

TINY = ModelConfig(
    num_scales=2, attention_maps=(2, 3, 3), image_channels=6, label_channels=5, style_dim=4, ngf=4, spade_hidden=4
)
CLASSES = 5


def batch(seed: int, size: int = 16) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)

    def labels():
        ids = torch.randint(0, CLASSES, (2, size // 4, size // 4), generator=generator).repeat_interleave(4, 1)
        return torch.nn.functional.one_hot(ids.repeat_interleave(4, 2), CLASSES).permute(0, 3, 1, 2).float()

    images = torch.rand(2, 3, size, size, generator=generator) * 2 - 1
    return {"target": images, "target_labels": labels(), "exemplar": images.flip(-1), "exemplar_labels": labels()}


def test_pretraining_lowers_the_feature_reconstruction_loss_and_leaves_synthesis_untouched():
    generator = build_generator("full", TINY, num_classes=CLASSES)
    decoder = build_decoder(generator)
    synthesis_before = {k: v.clone() for k, v in generator.synthesis.state_dict().items()}
    encoder_before = {k: v.clone() for k, v in pretrained_state(generator).items()}
    fixed = [batch(0)]
    history = pretrain(
        generator=generator,
        decoder=decoder,
        batches=lambda epoch: fixed,
        epochs=30,
        lr=1e-2,
        device=torch.device("cpu"),
    )
    assert history[-1] < 0.7 * history[0]
    assert all(torch.equal(v, synthesis_before[k]) for k, v in generator.synthesis.state_dict().items())
    changed = [k for k, v in pretrained_state(generator).items() if not torch.equal(v, encoder_before[k])]
    assert any(k.startswith("aligners.") for k in changed) and any(
        k.startswith("image_encoder.projections.") for k in changed
    )
    assert any(k.startswith("label_encoder.") for k in changed)


def test_the_loss_compares_with_the_target_not_the_exemplar():
    generator = build_generator("full", TINY, num_classes=CLASSES)
    decoder = build_decoder(generator)
    data = batch(1)
    swapped = dict(data, target=torch.rand_like(data["target"]))
    assert feature_reconstruction_loss(generator, decoder, data) != feature_reconstruction_loss(
        generator, decoder, swapped
    )


def test_pretrained_weights_initialize_msca_variants_whole_and_others_where_they_share_modules():
    source = build_generator("full", TINY.model_copy(update={"seed": 3}), num_classes=CLASSES)
    state = pretrained_state(source)
    assert set(initialize_from_pretraining(build_generator("no_fm", TINY, num_classes=CLASSES), state)) == set(state)
    gap = build_generator("gap", TINY, num_classes=CLASSES)
    copied = initialize_from_pretraining(gap, state)
    assert copied and not any(k.startswith("aligners.") for k in copied)
    assert torch.equal(gap.label_encoder.convs[0].weight, source.label_encoder.convs[0].weight)


def test_spade_vae_has_nothing_to_pretrain_with_the_decoder():
    with pytest.raises(ValueError, match="no image encoder"):
        build_decoder(build_generator("spade_vae", TINY, num_classes=CLASSES))
