import torch
import torch.nn.functional as F
from torch import nn

from egsynth.config import TrainConfig
from egsynth.models.discriminator import MultiscaleDiscriminator, PatchDiscriminator, build_discriminator

NUM_CLASSES = 4


def one_hot(batch: int, height: int, width: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, NUM_CLASSES, (batch, height, width), generator=generator)
    return F.one_hot(ids, NUM_CLASSES).permute(0, 3, 1, 2).float()


def inputs(height: int = 32, width: int = 32, exemplar_size: tuple[int, int] | None = None, seed: int = 0):
    eh, ew = exemplar_size or (height, width)
    generator = torch.Generator().manual_seed(seed)
    image = torch.rand(2, 3, height, width, generator=generator) * 2 - 1
    exemplar = torch.rand(2, 3, eh, ew, generator=generator) * 2 - 1
    return image, one_hot(2, height, width, seed), exemplar, one_hot(2, eh, ew, seed + 1)


def small(num_discriminators: int = 2) -> MultiscaleDiscriminator:
    torch.manual_seed(0)
    return MultiscaleDiscriminator(num_classes=NUM_CLASSES, ndf=4, num_discriminators=num_discriminators)


def test_returns_features_and_logits_per_discriminator():
    outputs = small(3)(*inputs())
    assert len(outputs) == 3
    for features in outputs:
        assert len(features) == 3 + 2  # three stride-2 layers, one stride-1 layer, the logits
        assert features[-1].shape[:2] == (2, 1)


def test_each_discriminator_sees_the_input_at_half_the_previous_resolution():
    discriminator = small(3)
    seen = []
    for patch in discriminator.discriminators:
        patch.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape))
    discriminator(*inputs(32, 24))
    channels = 2 * (3 + NUM_CLASSES)
    assert seen == [(2, channels, 32, 24), (2, channels, 16, 12), (2, channels, 8, 6)]


def test_second_discriminator_input_is_the_padding_free_average_pool():
    discriminator = small(2)
    seen = []
    discriminator.discriminators[1].register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    image, labels, exemplar, exemplar_labels = inputs(16, 16)
    discriminator(image, labels, exemplar, exemplar_labels)
    x = torch.cat([image, labels, exemplar, exemplar_labels], dim=1)
    corner = x[:, :, :2, :2].mean(dim=(2, 3))  # the 3x3 window at (0, 0) covers 2x2 real pixels
    torch.testing.assert_close(seen[0][:, :, 0, 0], corner)


def test_every_conv_is_spectrally_normalized():
    convs = [m for m in small().modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 2 * 5
    assert all(nn.utils.parametrize.is_parametrized(conv, "weight") for conv in convs)


def test_first_layer_has_no_norm_and_the_others_instance_norm():
    patch = PatchDiscriminator(in_channels=3, ndf=4, n_layers=3)
    norms = [any(isinstance(m, nn.InstanceNorm2d) for m in layer.modules()) for layer in patch.layers]
    assert norms == [False, True, True, True, False]


def test_exemplar_of_another_size_is_accepted_and_resized():
    discriminator = small()
    image, labels, exemplar, exemplar_labels = inputs(32, 32, exemplar_size=(20, 28))
    outputs = discriminator(image, labels, exemplar, exemplar_labels)
    same_size = discriminator(*inputs(32, 32))
    assert [o[-1].shape for o in outputs] == [o[-1].shape for o in same_size]


def test_logits_depend_on_the_exemplar():
    discriminator = small()
    image, labels, exemplar, exemplar_labels = inputs()
    with torch.no_grad():
        first = discriminator.eval()(image, labels, exemplar, exemplar_labels)
        second = discriminator(image, labels, exemplar.flip(-1).neg(), exemplar_labels)
    for a, b in zip(first, second, strict=True):
        assert (a[-1] - b[-1]).abs().amax() > 1e-4


def test_build_discriminator_initializes_from_the_train_seed_whatever_the_global_rng_holds():
    config = TrainConfig(seed=3, ndf=4, num_discriminators=2)
    torch.manual_seed(1)
    first = build_discriminator(config, num_classes=NUM_CLASSES).state_dict()
    torch.manual_seed(2)
    second = build_discriminator(config, num_classes=NUM_CLASSES).state_dict()
    other_seed = build_discriminator(config.model_copy(update={"seed": 4}), num_classes=NUM_CLASSES).state_dict()
    assert all(torch.equal(first[key], second[key]) for key in first)
    assert not all(torch.equal(first[key], other_seed[key]) for key in first)
