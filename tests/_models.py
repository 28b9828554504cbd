"""Model shapes the tests share."""

from egsynth.config import ModelConfig

TINY_MODEL = ModelConfig(
    num_scales=2,
    attention_maps=(2, 4, 4),
    backbone="random",
    image_channels=8,
    label_channels=8,
    style_dim=8,
    ngf=8,
    spade_hidden=8,
)
"""A generator of the trained shape (MSCA at every scale, SPADE synthesis) at a few thousand parameters: runs in
milliseconds on 32-64 px cases."""
