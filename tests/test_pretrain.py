import logging

import pytest
import torch

from egsynth.config import ModelConfig
from egsynth.models.generator import build_generator
from egsynth.training.pretrain import (
    build_decoder,
    feature_reconstruction_loss,
    initialize_from_pretraining,
    load_pretrained,
    pretrain,
    pretrained_state,
    save_pretrained,
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
    no_fm = initialize_from_pretraining(build_generator("no_fm", TINY, num_classes=CLASSES), state)
    assert set(no_fm.loaded) == set(state) and no_fm.not_loaded == {}
    gap = build_generator("gap", TINY, num_classes=CLASSES)
    copied = initialize_from_pretraining(gap, state).loaded
    assert copied and not any(k.startswith("aligners.") for k in copied)
    assert torch.equal(gap.label_encoder.convs[0].weight, source.label_encoder.convs[0].weight)


def test_what_did_not_load_is_returned_with_why_and_logged_at_warning(caplog):
    state = pretrained_state(build_generator("full", TINY, num_classes=CLASSES))
    wider = build_generator("full", TINY.model_copy(update={"label_channels": 7}), num_classes=CLASSES)
    with caplog.at_level(logging.WARNING, logger="egsynth.training.pretrain"):
        gap = initialize_from_pretraining(build_generator("gap", TINY, num_classes=CLASSES), state)
    assert set(gap.not_loaded) == {key for key in state if key.startswith("aligners.")} != set()
    assert set(gap.not_loaded.values()) == {"gap has no such tensor"}
    assert set(gap.loaded) | set(gap.not_loaded) == set(state)
    (record,) = caplog.records
    assert f"{len(gap.not_loaded)} of {len(state)} pretrained tensors did not load into gap" in record.getMessage()
    assert "aligners.0" in record.getMessage()

    shapes = initialize_from_pretraining(wider, state).not_loaded
    assert shapes and all(reason.startswith("shape (") for reason in shapes.values())


def test_a_pretraining_file_round_trips_and_another_file_is_refused_naming_it(tmp_path):
    generator = build_generator("full", TINY, num_classes=CLASSES)
    save_pretrained(generator, build_decoder(generator), tmp_path / "pretrain.pt")
    loaded = load_pretrained(tmp_path / "pretrain.pt")
    assert loaded.keys() == pretrained_state(generator).keys()
    assert all(torch.equal(loaded[k], v) for k, v in pretrained_state(generator).items())
    torch.save({"state_dict": {}}, tmp_path / "generator.pt")
    with pytest.raises(ValueError, match=r"generator.pt: not a pretraining file \(no state, decoder, backbone\)"):
        load_pretrained(tmp_path / "generator.pt")


def test_spade_vae_has_nothing_to_pretrain_with_the_decoder():
    with pytest.raises(ValueError, match="no image encoder"):
        build_decoder(build_generator("spade_vae", TINY, num_classes=CLASSES))
