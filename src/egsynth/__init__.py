"""egsynth: example-guided scene synthesis with Masked Spatial-Channel Attention (MSCA)."""

__version__ = "0.1.0"
