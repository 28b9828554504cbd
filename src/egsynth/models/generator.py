"""The generator x̂_{2→1} = G(c1, x2, c̃2) of Fig. 2 and every variant it is compared with.

Three steps, one scale i = 0..L at a time (finest first):
1. feature extraction: F_x2^(i) = W_x^(i) * VGG^(i)(x2) (Eq. 1), F_c1^(i), F_c2^(i) from the same
   coarse-to-fine label encoder (Eq. 2-3);
2. alignment: F_x1^(i) from (F_x2^(i), F_c2^(i), F_c1^(i)), by MSCA (Eq. 4-8) or an ablation;
3. synthesis: SPADE residual blocks normalized by [F_x1^(i), F_c1^(i)] (Sec. 3.3, appendix E).

The variants of Sec. 4 (`models/variants.py`) share the synthesis network, all but `spade_vae`; they
differ in step 2 (the alignment module of their `VariantSpec`) and in how they train.

`spade_vae` is SPADE's example-guided mode [38] (Sec. 4 "Comparative Methods"): no alignment and no
F_x; a VAE encoder maps the exemplar x2 to a style posterior N(mu, exp(logvar)), and z from it enters
as SPADE feeds it, through a linear layer to the synthesis network's first feature map, while the
SPADE blocks are conditioned on the target's label features F_c1^(i) alone (SPADE conditions on the
one-hot map; F_c1 is a learned encoding of it, shared with the other variants). It is trained by
self-reconstruction (`pipeline/train.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from egsynth.config import ModelConfig
from egsynth.data.cocostuff import CATEGORIES, NUM_CLASSES
from egsynth.io import atomic_path, torch_load_problem
from egsynth.models.features import ImageEncoder, LabelEncoder, VGGFeatures, backbone_label, resize_labels
from egsynth.models.msca import MSCA, AttentionRecord, DenseAttention, GlobalPooling, LabelAttention
from egsynth.models.spade import SynthesisNetwork
from egsynth.models.variants import VARIANTS, Alignment, VariantSpec, variant_spec

# ---------------------------------------------------------------------------------------------
# helpers


@dataclass
class Exemplar:
    """The exemplar side of Eq. 1-3 at every scale, computed once and reusable across targets."""

    image: Tensor  # x2 [B, 3, H2, W2]
    features: list[Tensor]  # F_x2^(i) [B, N, H2/2^i, W2/2^i]
    label_features: list[Tensor]  # F_c2^(i) [B, M, H2/2^i, W2/2^i]
    labels: list[Tensor]  # c̃2^(i), one-hot resized [B, C, H2/2^i, W2/2^i]


@dataclass
class Target:
    """The target side of Eq. 2 at every scale."""

    label_features: list[Tensor]  # F_c1^(i) [B, M, H1/2^i, W1/2^i]
    labels: list[Tensor]  # c1^(i), one-hot resized [B, C, H1/2^i, W1/2^i]


@dataclass
class GeneratorOutput:
    image: Tensor  # x̂ [B, 3, H1, W1] in [-1, 1]
    attention: list[AttentionRecord]  # per scale, finest first (empty for spade_vae)
    mu: Tensor | None = None  # spade_vae: the style posterior, for the KL term
    logvar: Tensor | None = None


# ---------------------------------------------------------------------------------------------
# the SPADE_VAE baseline's style encoder


class StyleEncoder(nn.Module):
    """SPADE's VAE image encoder: stride-2 convs to a posterior N(mu, exp(logvar)) over the style code z."""

    def __init__(self, *, style_dim: int, width: int = 32, depth: int = 5):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for level in range(depth):
            out = width * min(2**level, 8)
            # group norm, not SPADE's instance norm: it also works once the map is 1x1 (images of 32 px)
            layers += [nn.Conv2d(channels, out, 3, stride=2, padding=1), nn.GroupNorm(8, out), nn.LeakyReLU(0.2)]
            channels = out
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.mu = nn.Linear(channels, style_dim)
        self.logvar = nn.Linear(channels, style_dim)

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor]:
        hidden = self.body(image)  # [B, width * 8]
        return self.mu(hidden), self.logvar(hidden)


# ---------------------------------------------------------------------------------------------
# the generator


class Generator(nn.Module):
    def __init__(
        self,
        *,
        variant: str,  # a name in models/variants.py's VARIANTS
        num_classes: int,  # C: one-hot channels of c1 and c̃2
        num_scales: int,  # L: scales 0..L
        attention_maps: tuple[int, ...],  # K per scale 0..L (MSCA variants)
        backbone: str,  # VGG-19 weights: imagenet | <path> | random
        seed: int,  # seed of the random backbone
        image_channels: int,  # N of Eq. 1
        label_channels: int,  # M of Eq. 2-3
        style_dim: int,  # z size of spade_vae
        dense_attention_side: int,  # full_attention's largest correspondence side
        ngf: int,  # synthesis width
        spade_hidden: int,  # hidden channels of SPADE's condition convs
        norm: str,  # SPADE's parameter-free norm: instance | batch
        image_colors: bool = False,  # W_x also reads the exemplar's RGB at each scale (not in the paper)
        attention_labels: bool = False,  # MSCA's φ and ψ also read the one-hot labels (not in the paper)
        attention_label_inits: list[float] | None = None,  # std of MSCA's tied class weights per scale (None: 0)
        attention_classes: list[int] | None = None,  # one-hot preferences, map k: the k-th index (None: Gaussian)
    ):
        super().__init__()
        spec = variant_spec(variant)
        assert len(attention_maps) == num_scales + 1, "one K per scale"
        self.variant = variant
        self.num_scales = num_scales
        self.backbone = backbone_label(backbone)
        self.label_encoder = LabelEncoder(num_classes=num_classes, label_channels=label_channels, num_scales=num_scales)
        if spec.vae:
            self.style_encoder = StyleEncoder(style_dim=style_dim)
            condition_channels = label_channels  # the labels only: z enters through the synthesis head
        else:
            vgg = VGGFeatures(backbone=backbone, seed=seed, num_scales=num_scales)
            self.image_encoder = ImageEncoder(vgg=vgg, image_channels=image_channels, colors=image_colors)
            label_inits = attention_label_inits or [0.0] * (num_scales + 1)
            self.aligners = nn.ModuleList(
                self._aligner(
                    spec.alignment,
                    image_channels,
                    label_channels,
                    k,
                    num_classes,
                    dense_attention_side,
                    {
                        "num_classes": num_classes if attention_labels else 0,
                        "label_init": init,
                        "preferred_classes": attention_classes,
                    },
                )
                for k, init in zip(attention_maps, label_inits, strict=True)
            )
            condition_channels = image_channels + label_channels  # [F_x1^(i), F_c1^(i)]
        self.synthesis = SynthesisNetwork(
            condition_channels=[condition_channels] * (num_scales + 1),
            ngf=ngf,
            norm=norm,
            hidden=spade_hidden,
            style_dim=style_dim if spec.vae else 0,
        )

    @property
    def spec(self) -> VariantSpec:
        """What the variant is; `variant` stays its name, which saved generators record."""
        return VARIANTS[self.variant]

    @staticmethod
    def _aligner(
        alignment: Alignment, n: int, m: int, k: int, num_classes: int, dense_side: int, msca_labels: dict
    ) -> nn.Module:
        if alignment is Alignment.MSCA:
            return MSCA(n, m, k, **msca_labels)
        if alignment is Alignment.POOLING:
            return GlobalPooling()
        if alignment is Alignment.LABELS:
            return LabelAttention(n, m, num_classes)
        assert alignment is Alignment.DENSE, f"{alignment} has no alignment module"
        return DenseAttention(n, m, max_side=dense_side)

    # -- the three steps, exposed so style manipulation (manipulation.py) can recompose them --

    def encode_exemplar(self, x2: Tensor, c2: Tensor) -> Exemplar:
        """Eq. 1 and Eq. 3 for the exemplar x2 with its parsed labels c̃2."""
        features = self.image_encoder(x2)
        label_features = self.label_encoder(c2)
        labels = [resize_labels(c2, f.shape[-2:]) for f in label_features]
        return Exemplar(image=x2, features=features, label_features=label_features, labels=labels)

    def encode_target(self, c1: Tensor) -> Target:
        """Eq. 2 for the target label map c1."""
        label_features = self.label_encoder(c1)
        return Target(label_features=label_features, labels=[resize_labels(c1, f.shape[-2:]) for f in label_features])

    def align(self, exemplar: Exemplar, target: Target) -> tuple[list[Tensor], list[AttentionRecord]]:
        """F_x1^(i) per scale (Eq. 4-8 or the variant's replacement) and the attention records."""
        aligned, records = [], []
        masking = self.spec.feature_masking
        for scale, aligner in enumerate(self.aligners):
            f_x2, f_c2, f_c1 = exemplar.features[scale], exemplar.label_features[scale], target.label_features[scale]
            if isinstance(aligner, LabelAttention):
                f_x1, record = aligner(f_x2, f_c2, f_c1, exemplar.labels[scale], target.labels[scale])
            elif isinstance(aligner, MSCA):
                labels = {"c2": exemplar.labels[scale], "c1": target.labels[scale]}
                f_x1, record = aligner(f_x2, f_c2, f_c1, masking=masking, **labels)
            else:
                f_x1, record = aligner(f_x2, f_c2, f_c1, masking=masking)
            aligned.append(f_x1)
            records.append(record)
        return aligned, records

    def synthesize(self, aligned: list[Tensor], target: Target) -> Tensor:
        """Sec. 3.3: SPADE synthesis conditioned on [F_x1^(i), F_c1^(i)] at every scale."""
        return self.synthesis(
            [torch.cat([f_x1, f_c1], dim=1) for f_x1, f_c1 in zip(aligned, target.label_features, strict=True)]
        )

    def forward(self, c1: Tensor, x2: Tensor, c2: Tensor) -> GeneratorOutput:
        """x̂_{2→1} = G(c1, x2, c̃2): c1 [B, C, H1, W1] one-hot, x2 [B, 3, H2, W2] in [-1, 1], c̃2 [B, C, H2, W2]."""
        assert c1.dim() == x2.dim() == c2.dim() == 4 and x2.shape[1] == 3, "expects [B, C, H, W] tensors"
        assert c2.shape[-2:] == x2.shape[-2:], f"exemplar labels {tuple(c2.shape)} do not match x2 {tuple(x2.shape)}"
        target = self.encode_target(c1)
        if self.spec.vae:
            mu, logvar = self.style_encoder(x2)  # [B, style_dim] each
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu  # [B, style_dim]
            image = self.synthesis(target.label_features, z=z)  # [B, 3, H1, W1]
            return GeneratorOutput(image=image, attention=[], mu=mu, logvar=logvar)
        aligned, records = self.align(self.encode_exemplar(x2, c2), target)
        return GeneratorOutput(image=self.synthesize(aligned, target), attention=records)


def build_generator(variant: str, config: ModelConfig, *, num_classes: int = NUM_CLASSES) -> Generator:
    """The generator of `variant` from the model params, its weights initialized from `config.seed`."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return Generator(
            variant=variant,
            num_classes=num_classes,
            num_scales=config.num_scales,
            attention_maps=config.attention_maps,
            backbone=config.backbone,
            seed=config.seed,
            image_channels=config.image_channels,
            label_channels=config.label_channels,
            style_dim=config.style_dim,
            dense_attention_side=config.dense_attention_side,
            ngf=config.ngf,
            spade_hidden=config.spade_hidden,
            norm=config.norm,
            image_colors=config.image_colors,
            attention_labels=config.attention_labels,
            attention_label_inits=config.attention_label_inits,
            attention_classes=class_indices(config.attention_classes),
        )


def class_indices(names: list[str] | None) -> list[int] | None:
    """COCO-stuff class names -> class indices, in order (`model.attention_classes`); None stays None."""
    if names is None:
        return None
    index_of = {category.name: index for index, category in enumerate(CATEGORIES)}
    unknown = [name for name in names if name not in index_of]
    if unknown:
        raise ValueError(f"model.attention_classes: no COCO-stuff class named {', '.join(map(repr, unknown))}")
    return [index_of[name] for name in names]


def parameter_counts(generator: Generator) -> dict[str, int]:
    """Trainable parameters per component (the frozen VGG-19 listed apart), for the README's table."""
    vae = generator.spec.vae
    components: dict[str, nn.Module] = (
        {"style_encoder (VAE)": generator.style_encoder}
        if vae
        else {"image_encoder (W_x)": generator.image_encoder.projections}
    )
    components["label_encoder (W_c)"] = generator.label_encoder
    if not vae:
        components["alignment"] = generator.aligners
    components["synthesis (SPADE)"] = generator.synthesis
    counts = {
        name: sum(p.numel() for p in module.parameters() if p.requires_grad) for name, module in components.items()
    }
    counts["total trainable"] = sum(p.numel() for p in generator.parameters() if p.requires_grad)
    counts["vgg19 (frozen)"] = sum(p.numel() for p in generator.parameters() if not p.requires_grad)
    return counts


# ---------------------------------------------------------------------------------------------
# files


FROZEN_PREFIX = "image_encoder.vgg."
"""The frozen VGG-19 inside the generator: rebuilt from `model.backbone`, not stored."""


def save_generator(generator: Generator, config: ModelConfig, path: Path, *, num_classes: int = NUM_CLASSES) -> None:
    """Write G with the model params that rebuild it (`load_generator` needs nothing else), atomically."""
    state = {key: value for key, value in generator.state_dict().items() if not key.startswith(FROZEN_PREFIX)}
    payload = {
        "variant": generator.variant,
        "model": config.model_dump(mode="json"),
        "num_classes": num_classes,
        "backbone": generator.backbone,
        "state_dict": state,
    }
    with atomic_path(path) as staging:
        torch.save(payload, staging)


class GeneratorFileError(ValueError):
    """A file `load_generator` cannot rebuild a generator from; the message names the file and the problem."""


SAVED_KEYS = ("variant", "model", "num_classes", "backbone", "state_dict")
"""What `save_generator` writes."""


def load_generator(path: Path | str, *, map_location: str | torch.device = "cpu") -> Generator:
    """Rebuild a generator written by `save_generator` (`torch.load(weights_only=True)`), in eval mode.

    Raises FileNotFoundError for a missing file and GeneratorFileError for one that is unreadable, is
    not a saved generator, or holds weights that do not fit the params it records.
    """
    path = Path(path)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: generator file not found") from None
    except Exception as error:  # torch raises several types for a bad file
        raise GeneratorFileError(f"{path}: not a readable torch file: {torch_load_problem(error)}") from None
    if not isinstance(payload, dict) or not set(SAVED_KEYS) <= payload.keys():
        raise GeneratorFileError(f"{path}: not a saved generator (expected a dict with {', '.join(SAVED_KEYS)})")
    try:
        config = ModelConfig.model_validate(payload["model"])
        generator = build_generator(payload["variant"], config, num_classes=payload["num_classes"])
    except ValueError as error:  # pydantic's ValidationError and an unknown variant are ValueErrors
        raise GeneratorFileError(f"{path}: its model params are not valid ({' '.join(str(error).split())})") from None
    if generator.backbone != payload["backbone"]:
        raise GeneratorFileError(
            f"{path}: trained with backbone {payload['backbone']}, rebuilt with {generator.backbone}"
        )
    try:
        missing, unexpected = generator.load_state_dict(payload["state_dict"], strict=False)
    except (RuntimeError, TypeError) as error:  # shapes that differ from the recorded params, or no state dict
        detail = " ".join(str(error).split())[:300]
        raise GeneratorFileError(f"{path}: weights do not fit the model params it records ({detail})") from None
    if unexpected or any(not key.startswith(FROZEN_PREFIX) for key in missing):
        raise GeneratorFileError(
            f"{path}: weights do not match the {payload['variant']} generator ({missing + unexpected})"
        )
    return generator.eval()
