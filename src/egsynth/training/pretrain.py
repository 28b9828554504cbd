"""MSCA pretraining with a lightweight auxiliary feature decoder (appendix G, Fig. 16).

At each scale i a 1x1 conv reads [F_x1^(i), F_c1^(i)] and predicts the VGG-19 features of the
target x1 at that scale; the L1 errors are summed over scales with weights, and backpropagation
updates the feature extractors (W_x, W_c) and the MSCA modules, without going through the heavy
SPADE synthesis. Pairs are non-overlapping patches of one scene, as in phase 1 (appendix G).
The learned extractor and alignment weights initialize GAN training (`initialize_from_pretraining`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from egsynth.io import atomic_path
from egsynth.models.generator import Generator

log = logging.getLogger(__name__)

PRETRAINED_PREFIXES = ("image_encoder.projections.", "label_encoder.", "aligners.")
"""Generator weights that pretraining learns (W_x, W_c and the alignment modules)."""


class AuxiliaryDecoder(nn.Module):
    """Fig. 16: per scale, a 1x1 conv from [F_x1^(i), F_c1^(i)] to the VGG-19 features of x1."""

    def __init__(
        self,
        *,
        condition_channels: Sequence[int],  # N + M per scale, finest first
        vgg_channels: Sequence[int],  # channels of VGG-19 at each scale
    ):
        super().__init__()
        self.heads = nn.ModuleList(
            nn.Conv2d(condition, vgg, kernel_size=1)
            for condition, vgg in zip(condition_channels, vgg_channels, strict=True)
        )

    def forward(self, conditions: list[Tensor]) -> list[Tensor]:
        return [head(condition) for head, condition in zip(self.heads, conditions, strict=True)]


def build_decoder(generator: Generator) -> AuxiliaryDecoder:
    """The auxiliary decoder matching a generator's feature sizes (MSCA-style variants with an image encoder)."""
    if not hasattr(generator, "image_encoder"):
        raise ValueError(f"variant {generator.variant!r} has no image encoder to pretrain")
    image_channels = generator.image_encoder.image_channels
    label_channels = generator.label_encoder.convs[0].out_channels
    vgg_channels = generator.image_encoder.vgg.channels
    return AuxiliaryDecoder(
        condition_channels=[image_channels + label_channels] * len(vgg_channels), vgg_channels=vgg_channels
    )


def feature_reconstruction_loss(generator: Generator, decoder: AuxiliaryDecoder, batch: dict[str, Tensor]) -> Tensor:
    """Appendix G: sum over scales of the L1 error between the decoded [F_x1, F_c1] and VGG^(i)(x1).

    The scales are weighted by 1 / (number of scales); the paper weights them but does not give the weights.
    """
    target = generator.encode_target(batch["target_labels"])
    exemplar = generator.encode_exemplar(batch["exemplar"], batch["exemplar_labels"])
    aligned, _ = generator.align(exemplar, target)
    predictions = decoder(
        [torch.cat([f_x1, f_c1], dim=1) for f_x1, f_c1 in zip(aligned, target.label_features, strict=True)]
    )
    with torch.no_grad():
        truth = generator.image_encoder.vgg(batch["target"])  # VGG^(i)(x1), finest first
    losses = [F.l1_loss(prediction, vgg) for prediction, vgg in zip(predictions, truth, strict=True)]
    return torch.stack(losses).mean()


def pretrain(
    *,
    generator: Generator,
    decoder: AuxiliaryDecoder,
    batches: Callable[[int], Iterable[dict[str, Tensor]]],  # the batches of an epoch, deterministic order
    epochs: int,
    lr: float,
    device: torch.device,
    on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Train W_x, W_c, the alignment modules and the decoder; return the per-step loss history."""
    generator.to(device).train()
    decoder.to(device).train()
    parameters = [p for name, p in generator.named_parameters() if name.startswith(PRETRAINED_PREFIXES)]
    optimizer = torch.optim.Adam(parameters + list(decoder.parameters()), lr=lr)
    history: list[float] = []
    for epoch in range(epochs):
        progress = tqdm(batches(epoch), desc=f"pretrain epoch {epoch + 1}/{epochs}", unit="batch")
        for batch in progress:
            batch = {key: value.to(device) for key, value in batch.items() if torch.is_tensor(value)}
            loss = feature_reconstruction_loss(generator, decoder, batch)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"pretraining loss became {loss.item()} at step {len(history)}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            history.append(loss.item())
            progress.set_postfix(l1=f"{history[-1]:.4f}")
            if on_step is not None:
                on_step(len(history), history[-1])
    return history


def pretrained_state(generator: Generator) -> dict[str, Tensor]:
    """The part of the generator's state dict that pretraining learned."""
    return {key: value for key, value in generator.state_dict().items() if key.startswith(PRETRAINED_PREFIXES)}


PRETRAINED_KEYS = ("state", "decoder", "backbone")
"""What `save_pretrained` writes: the learned generator weights, the auxiliary decoder, the VGG-19 label."""


def save_pretrained(generator: Generator, decoder: AuxiliaryDecoder, path: Path) -> None:
    """Write the pretrained weights (`models/pretrain.pt`), atomically; `load_pretrained` reads them back."""
    payload = {"state": pretrained_state(generator), "decoder": decoder.state_dict(), "backbone": generator.backbone}
    with atomic_path(path) as staging:
        torch.save(payload, staging)


def load_pretrained(path: Path) -> dict[str, Tensor]:
    """The generator weights of a file written by `save_pretrained` (`torch.load(weights_only=True)`)."""
    payload = torch.load(path, weights_only=True)
    missing = [key for key in PRETRAINED_KEYS if not isinstance(payload, dict) or key not in payload]
    if missing:
        raise ValueError(f"{path}: not a pretraining file (no {', '.join(missing)}); rerun the pretrain stage")
    return payload["state"]


@dataclass(frozen=True)
class PretrainedLoad:
    """What `initialize_from_pretraining` copied into a generator and what it left at the initial weights."""

    loaded: list[str]  # pretrained tensors copied, by state-dict key
    not_loaded: dict[str, str]  # pretrained tensor -> why it was not copied (no such tensor, another shape)


def initialize_from_pretraining(generator: Generator, state: dict[str, Tensor]) -> PretrainedLoad:
    """Copy every pretrained weight whose name and shape the generator shares, and report the others.

    MSCA variants take everything; `gap`, `no_att` and `full_attention` take the extractors
    (their alignment modules differ); `spade_vae` takes the label encoder only. What does not load is
    logged at WARNING, grouped by module, and returned: a variant that should take everything but does
    not (a renamed module, another size) trains from the initial weights there, and the log says so.
    """
    own = generator.state_dict()
    not_loaded = {}
    for key, value in state.items():
        if key not in own:
            not_loaded[key] = f"{generator.variant} has no such tensor"
        elif own[key].shape != value.shape:
            not_loaded[key] = f"shape {tuple(value.shape)}, {generator.variant}'s is {tuple(own[key].shape)}"
    shared = {key: value for key, value in state.items() if key not in not_loaded}
    generator.load_state_dict(shared, strict=False)
    log.info("initialized %d of %d pretrained tensors", len(shared), len(state))
    if not_loaded:
        modules = sorted({key.rsplit(".", 1)[0] for key in not_loaded})
        log.warning(
            "%d of %d pretrained tensors did not load into %s, which trains them from its initial weights: %s",
            len(not_loaded),
            len(state),
            generator.variant,
            ", ".join(modules),
        )
    return PretrainedLoad(loaded=sorted(shared), not_loaded=dict(sorted(not_loaded.items())))
