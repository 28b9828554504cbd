"""The params schema: one frozen pydantic model per `params.yaml` section, validated once per stage.

Every stage calls `load_params(path)` at its boundary and receives typed, immutable objects; no
code below the boundary reads `params.yaml` or a raw dict. An unknown or mistyped key stops the
stage with one line naming the key, the file and what was expected (`ParamsError`).

Numbers of the paper (Sec. 4 "Implementation details", appendices F and G) live in
`configs/paper.yaml`; `params.yaml` is the embedded CPU default and `configs/smoke.yaml` the tiny
preset the tests run.

`canonical_params`, `params_hash` and `flatten_params` are the one canonical form of a params mapping,
shared by training checkpoints (which refuse other params) and MLflow tracking (which keys runs by it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from ruamel.yaml import YAML
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import YAMLError


class ParamsError(ValueError):
    """A params file that does not match the schema; the message is one line for the user."""


class _Section(BaseModel):
    """Strict: a value of another type is refused, never converted (`batch_size: true` is no 1, `lr: "1"` no
    number); ints stand for floats. Paths and tuples relax only the container: YAML has neither, so a string
    names a path and a list fills a tuple, whose items stay strict."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class DataConfig(_Section):
    source: Literal["embedded", "coco_stuff"] = "embedded"
    """`embedded`: the `scenes` stage renders its own COCO-stuff-format dataset; `coco_stuff`: read a
    real COCO-stuff tree at `root` (validated and digested, never copied into the DVC cache)."""
    root: Path | None = Field(None, strict=False)
    """Root of a real COCO-stuff tree (images/, stuffthingmaps/, annotations/); required for coco_stuff."""

    @model_validator(mode="after")
    def _root_given_for_coco_stuff(self) -> DataConfig:
        if self.source == "coco_stuff" and self.root is None:
            raise ValueError("data.root is required when data.source is coco_stuff")
        return self


class ScenesConfig(_Section):
    seed: int = 0
    """Seed of every layout, style and texture choice of the embedded dataset."""
    num_train: int = Field(2400, ge=1)
    """Scenes written to train2017."""
    num_val: int = Field(600, ge=1)
    """Scenes written to val2017 (the test split)."""
    height: int = Field(128, ge=16)
    width: int = Field(128, ge=16)
    indoor_fraction: float = Field(0.12, ge=0, le=1)
    """Share of indoor scenes (the `filter` stage removes them, as the paper removes indoor images)."""
    object_fraction: float = Field(0.08, ge=0, le=1)
    """Share of object-centric scenes (the paper's "images of random objects", removed by `filter`)."""
    jpeg_quality: int = Field(95, ge=1, le=100)
    workers: int = Field(2, ge=1)
    """Processes rendering in parallel."""

    @model_validator(mode="after")
    def _fractions_leave_outdoor_scenes(self) -> ScenesConfig:
        if self.indoor_fraction + self.object_fraction > 1:
            raise ValueError("scenes.indoor_fraction + scenes.object_fraction must be at most 1")
        return self


class FilterConfig(_Section):
    max_indoor_fraction: float = Field(0.05, ge=0, le=1)
    """An image with more indoor-stuff pixels (walls, floors, ceilings, furniture-stuff, ...) is indoor."""
    max_thing_fraction: float = Field(0.4, ge=0, le=1)
    """An image with more thing pixels is an image of an object rather than a scene."""
    min_stuff_fraction: float = Field(0.5, ge=0, le=1)
    """An outdoor scene is mostly stuff (sky, ground, water, plants, ...)."""
    max_unlabeled_fraction: float = Field(0.3, ge=0, le=1)
    on_invalid: Literal["error", "skip"] = "error"
    """A label map that fails validation: stop the stage (`error`) or skip the image and count it."""


class ParserConfig(_Section):
    source: Literal["train", "checkpoint", "oracle"] = "train"
    """`train`: a torchvision segmentation network trained from scratch on the train split (the paper
    uses a COCO-stuff DeepLab-v2); `checkpoint`: load `checkpoint`; `oracle`: ground-truth labels."""
    checkpoint: Path | None = Field(None, strict=False)
    """Weights file of the parser for `source: checkpoint`."""
    architecture: Literal[
        "lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large", "deeplabv3_resnet50", "deeplabv2_resnet101"
    ] = "lraspp_mobilenet_v3_large"
    """A torchvision segmentation model, or `deeplabv2_resnet101`: the paper's DeepLab-v2, whose COCO-stuff
    checkpoints from deeplab-pytorch load as they are; built without pretrained weights."""
    image_size: int = Field(128, ge=16)
    epochs: int = Field(4, ge=0)
    batch_size: int = Field(16, ge=1)
    lr: float = Field(1e-3, gt=0)
    seed: int = 0

    @model_validator(mode="after")
    def _checkpoint_given(self) -> ParserConfig:
        if self.source == "checkpoint" and self.checkpoint is None:
            raise ValueError("parser.checkpoint is required when parser.source is checkpoint")
        return self


class ParseConfig(_Section):
    shard_size: int = Field(256, ge=1)
    """Images per Prefect task (one task per shard)."""
    batch_size: int = Field(32, ge=1)
    dask_address: str | None = None
    """A Dask scheduler address: shards run on that cluster (prefect-dask) instead of in-process."""


class ManifestConfig(_Section):
    seed: int = 0
    image_size: int = Field(128, ge=16)
    """Global images are resized to this square size (paper: 512, Sec. 4)."""
    patch_size: int = Field(64, ge=8)
    """Cross-reconstruction patch size (paper: 256, appendix F)."""
    enlarged_patch_size: int = Field(96, ge=8)
    """Phase-2 crops, resized to `patch_size` (paper: 384, appendix F)."""
    flip: bool = True
    """Random horizontal flips (appendix F)."""

    @model_validator(mode="after")
    def _patches_fit(self) -> ManifestConfig:
        if 2 * self.patch_size > self.image_size:
            raise ValueError("manifest.patch_size must fit twice in manifest.image_size (two non-overlapping crops)")
        if not self.patch_size <= self.enlarged_patch_size <= self.image_size:
            raise ValueError("manifest.enlarged_patch_size must lie between patch_size and image_size")
        return self


class ModelConfig(_Section):
    num_scales: int = Field(4, ge=0)
    """L of Eq. 1-3: features at scales 0..L (paper: 4)."""
    attention_maps: tuple[int, ...] = Field((8, 16, 16, 16, 16), strict=False)
    """K of Eq. 4 per scale 0..L (paper: 8, 16, 16, 16, 16)."""
    backbone: str = "random"
    """VGG-19 weights: `imagenet` (torchvision's), a file path, or `random` (seeded by `seed`)."""
    seed: int = 0
    """Seed of every weight initialization (the `random` backbone included)."""
    image_channels: int = Field(64, ge=1)
    """N of Eq. 1: each scale's VGG-19 features are compressed to this many channels by W_x."""
    label_channels: int = Field(64, ge=1)
    """M of Eq. 2-3: channels of the label features F_c at every scale."""
    style_dim: int = Field(64, ge=1)
    """Latent size of the `spade_vae` baseline's style encoder."""
    dense_attention_side: int = Field(32, ge=1)
    """`full_attention` computes its HW x HW correspondence at most at this side, pooling finer scales."""
    ngf: int = Field(32, ge=1)
    """Width of the SPADE synthesis network."""
    spade_hidden: int = Field(64, ge=1)
    """Hidden channels of each SPADE layer's condition convs (SPADE: 128)."""
    norm: Literal["instance", "batch"] = "instance"
    """SPADE's parameter-free normalization (`batch` becomes SyncBatchNorm on GPUs under DDP)."""
    image_colors: bool = False
    """W_x of Eq. 1 also reads the image's RGB, area-averaged to each scale, beside the VGG-19 features (paper:
    false): a random VGG-19 entangles chroma with luminance (README, Deviations)."""
    attention_labels: bool = False
    """MSCA's φ (Eq. 4) and ψ (Eq. 7) also read the one-hot labels c̃2, c1 beside F_c2, F_c1 (paper: false)."""
    attention_label_init: float | list[float] = 0.0
    """Std of the class weights φ and ψ share at init, or with `attention_classes` the weight of each listed class
    on its map; one value for every scale or one per scale 0..L (paper: 0, the default init; needs
    attention_labels). A scale at 0 starts near uniform attention, a global pooling
    that carries the exemplar's tone to classes it does not show (Sec. 3.2, "Multi-scaling")."""
    attention_classes: list[str] | None = None
    """One-hot class preferences instead of Gaussian ones: at every scale, MSCA's map k prefers the k-th class
    named here (COCO-stuff names) with weight `attention_label_init` in both φ and ψ, every other class weight
    0. Each listed class then owns a map, and the map of a class the exemplar lacks prefers no class of it: that
    class reads about the exemplar's mean, as `gap` does (null: the Gaussian draws; README, "Deviations")."""

    @property
    def attention_label_inits(self) -> list[float]:
        """`attention_label_init` per scale 0..L."""
        init = self.attention_label_init
        return list(init) if isinstance(init, list) else [init] * (self.num_scales + 1)

    @model_validator(mode="after")
    def _one_k_per_scale(self) -> ModelConfig:
        if len(self.attention_maps) != self.num_scales + 1:
            raise ValueError(
                f"model.attention_maps needs one K per scale 0..{self.num_scales} "
                f"({self.num_scales + 1} values), got {len(self.attention_maps)}"
            )
        if isinstance(self.attention_label_init, list) and len(self.attention_label_init) != self.num_scales + 1:
            raise ValueError(
                f"model.attention_label_init as a list needs one value per scale 0..{self.num_scales} "
                f"({self.num_scales + 1} values), got {len(self.attention_label_init)}"
            )
        if any(init < 0 for init in self.attention_label_inits):
            raise ValueError("model.attention_label_init: a standard deviation, at least 0")
        if any(self.attention_label_inits) and not self.attention_labels:
            raise ValueError("model.attention_label_init needs model.attention_labels: true (the class weights)")
        if self.attention_classes is not None:
            self._check_attention_classes(self.attention_classes)
        return self

    def _check_attention_classes(self, names: list[str]) -> None:
        """The names themselves are checked where they become class indices (`build_generator`)."""
        if len(set(names)) != len(names):
            raise ValueError("model.attention_classes names a class twice: each class owns one map")
        if len(names) > min(self.attention_maps):
            raise ValueError(
                f"model.attention_classes names {len(names)} classes, more than the {min(self.attention_maps)} "
                "maps of the smallest model.attention_maps: each class needs a map of its own"
            )
        if not all(self.attention_label_inits):
            raise ValueError("model.attention_classes needs model.attention_label_init > 0 at every scale (the weight)")


class PretrainConfig(_Section):
    seed: int = 0
    epochs: int = Field(2, ge=0)
    """MSCA pretraining epochs with the auxiliary feature decoder (paper: 20, appendix G)."""
    batch_size: int = Field(8, ge=1)
    lr: float = Field(2e-4, gt=0)


class TrainConfig(_Section):
    seed: int = 0
    batch_size: int = Field(8, ge=1)
    lr: float = Field(2e-4, gt=0)
    """Adam learning rate of G and D (paper: 0.0002, Sec. 4)."""
    betas: tuple[float, float] = Field((0.9, 0.999), strict=False)
    """Adam betas (paper: 0.9, 0.999, Sec. 4)."""
    generator_every: int = Field(5, ge=1)
    """G is updated every this many iterations (paper: 5, Sec. 4)."""
    phase1_epochs: int = Field(1, ge=0)
    """Patch cross-reconstruction only (paper: 20, appendix F)."""
    phase2_epochs: int = Field(1, ge=0)
    """Enlarged patches plus global self-reconstruction (paper: 20, appendix F)."""
    warmup_epochs: int = Field(0, ge=0)
    """The first this many phase-1 epochs train G alone on the pixel L1 term, every iteration, without D
    (paper: 0; README, "Deviations")."""
    warmup_lr: float = Field(1e-3, gt=0)
    """Adam learning rate of G in the warm-up epochs."""
    lr_decay_epochs: int = Field(0, ge=0)
    """The last this many epochs decay the learning rate of G and D linearly to 0, step by step, as SPADE's
    `niter_decay` does by epoch (paper: 0, no decay; README, "Deviations")."""
    lambda_global: float = Field(1.0, ge=0)
    """λ of Eq. 11, weight of the global self-reconstruction task (paper: 1)."""
    gan_loss: Literal["hinge", "log"] = "hinge"
    """Adversarial loss: SPADE's hinge, or the log form written in Eq. 11."""
    lambda_feat: float = Field(10.0, ge=0)
    """Weight of discriminator feature matching inside L_spade (SPADE: 10)."""
    lambda_vgg: float = Field(10.0, ge=0)
    """Weight of the VGG perceptual loss inside L_spade (SPADE: 10)."""
    lambda_l1: float = Field(0.0, ge=0)
    """Weight of a pixel L1 term |x̂ - x| added to L_spade. Not in the paper (0 there): it stands in for
    the color signal an ImageNet VGG gives the perceptual loss, which a random VGG (offline) lacks."""
    lambda_kl: float = Field(0.05, ge=0)
    """Weight of the spade_vae baseline's KL term, which is KL(q(z | x2) || N(0, I)) summed over the latent
    dimensions and over the whole batch of `batch_size` (SPADE's KLDLoss weighted by its lambda_kld: 0.05).
    Per sample it weighs lambda_kl * batch_size against the other terms, which are batch means."""
    ndf: int = Field(64, ge=1)
    """Discriminator width."""
    num_discriminators: int = Field(2, ge=1)
    """Scales of the multiscale PatchGAN."""
    checkpoint_every: int = Field(50, ge=1)
    """Steps between resumable checkpoints."""

    @model_validator(mode="after")
    def _warmup_within_phase1(self) -> TrainConfig:
        if self.warmup_epochs > self.phase1_epochs:
            raise ValueError(
                f"train.warmup_epochs ({self.warmup_epochs}) counts phase-1 epochs: at most "
                f"train.phase1_epochs ({self.phase1_epochs})"
            )
        if self.warmup_epochs and not self.lambda_l1:
            raise ValueError("train.warmup_epochs trains on the pixel L1 term: set train.lambda_l1 > 0")
        adversarial_epochs = self.phase1_epochs + self.phase2_epochs - self.warmup_epochs
        if self.lr_decay_epochs > adversarial_epochs:
            raise ValueError(
                f"train.lr_decay_epochs ({self.lr_decay_epochs}) counts adversarial epochs: at most the "
                f"{adversarial_epochs} after the warm-up"
            )
        return self


class TasksConfig(_Section):
    seed: int = 0
    """Seed of the test-scene subset, the user study's retrieval candidates and the swap partners (and, in
    `evaluate` and `baselines`, of the other exemplars behind the swap task's exemplar gain)."""
    max_scenes: int | None = Field(240, ge=2)
    """Test scenes evaluated, a seeded subset (null: all). Each gives one case per task."""
    retrieval_pool: Literal["top_n", "user_study_percentile"] = "top_n"
    """Retrieving's exemplar search. `top_n`, the retrieving task of Sec. 4: the `retrieval_pool_size`
    training images of greatest label-histogram intersection with the target, every one ranked by the
    dense correspondence energy (SIFT Flow's role), the lowest chosen. `user_study_percentile`, the
    user study's setting (footnote 2): `num_candidates` drawn with the seed from the top
    `pool_percentile` percent, then ranked the same way."""
    retrieval_pool_size: int = Field(8, ge=1)
    """`top_n`: N, the images of greatest intersection ranked by correspondence energy (not given in the
    paper; each costs one correspondence per case)."""
    pool_percentile: float = Field(20.0, gt=0, le=100)
    """`user_study_percentile`: the pool is the training images in this top percentile of label-histogram
    intersection with the target (footnote 2: top 20 percentile)."""
    num_candidates: int = Field(8, ge=1)
    """`user_study_percentile`: candidates drawn from the pool and ranked by the correspondence energy."""
    correspondence_levels: int = Field(3, ge=1)
    """Pyramid levels of the coarse-to-fine dense SIFT correspondence (SIFT Flow's role)."""
    correspondence_radius: int = Field(3, ge=1)
    """Search radius in pixels at each pyramid level."""


class EvaluateConfig(_Section):
    batch_size: int = Field(16, ge=1)
    lpips_net: Literal["vgg16", "parser", "backbone"] = "parser"
    """vgg16: LPIPS v0.1 with ImageNet VGG-16 (the paper's; needs the torchvision weights file);
    parser / backbone: a labelled stand-in on the trained parser's / the model's VGG-19 features."""
    fid_net: Literal["inception", "parser", "backbone"] = "parser"
    """inception: FID proper (needs torch-fidelity's Inception weights file); parser / backbone: a
    labelled stand-in Fréchet distance on the trained parser's / the model's VGG-19 features."""


class FiguresConfig(_Section):
    seed: int = 0
    """Seed of the example cases shown in the figures (drawn by each `evaluate` stage)."""
    examples: int = Field(4, ge=1)
    """Rows of each qualitative grid (Fig. 4)."""
    swap_size: int = Field(6, ge=2)
    """Side of the style-structure swap matrix (Fig. 9: 6 x 6)."""
    interpolation_steps: int = Field(5, ge=2)
    """Columns t = 0 ... 1 of the style interpolation figures (Figs. 5, 7)."""


VariantName = Literal["full", "gap", "no_att", "no_fm", "no_global", "spade_vae", "full_attention"]
"""The names of `egsynth.models.variants.VARIANTS`, in its order (tests/test_variants.py checks it), spelled
out: every stage imports this module, and importing the registry would add it to every stage's deps."""


class Params(_Section):
    """A whole params file: one section per stage."""

    data: DataConfig = DataConfig()
    scenes: ScenesConfig = ScenesConfig()
    filter: FilterConfig = FilterConfig()
    parser: ParserConfig = ParserConfig()
    parse: ParseConfig = ParseConfig()
    manifest: ManifestConfig = ManifestConfig()
    model: ModelConfig = ModelConfig()
    pretrain: PretrainConfig = PretrainConfig()
    train: TrainConfig = TrainConfig()
    tasks: TasksConfig = TasksConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    figures: FiguresConfig = FiguresConfig()
    variants: tuple[VariantName, ...] = Field(("full", "gap"), strict=False)


def _describe(error: dict[str, Any], path: Path) -> str:
    key = ".".join(str(part) for part in error["loc"]) or "<top level>"
    if error["type"] == "extra_forbidden":
        parent = Params
        for part in error["loc"][:-1]:
            parent = parent.model_fields[str(part)].annotation
        expected = ", ".join(parent.model_fields)
        return f"{path}: unknown key '{key}' (expected one of: {expected})"
    return f"{path}: key '{key}': {error['msg']} (got {error.get('input')!r})"


def parse_params(raw: Any, path: Path) -> Params:
    """Validate a parsed params mapping; `path` only names the file in the error."""
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of sections, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as error:
        raise ParamsError(_describe(error.errors()[0], path)) from None


def load_params(path: Path | str = "params.yaml") -> Params:
    """Read and validate a whole params file (the stage boundary).

    YAML 1.2, as DVC reads params files (`1e-3` is a number, `yes` a string); a key given twice is refused,
    where a plain YAML load would silently keep the last value.
    """
    path = Path(path)
    try:
        raw = YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ParamsError(f"{path}: params file not found") from None
    except IsADirectoryError:
        raise ParamsError(f"{path}: is a directory, not a params file") from None
    except UnicodeDecodeError:
        raise ParamsError(f"{path}: not a text file (not UTF-8), so not a params file") from None
    except OSError as error:
        raise ParamsError(f"{path}: cannot be read ({error.strerror or error})") from None
    except DuplicateKeyError as error:
        line = error.problem_mark.line + 1 if error.problem_mark else "?"
        raise ParamsError(f"{path}: line {line}: {' '.join(str(error.problem).split())}") from None
    except YAMLError as error:
        raise ParamsError(f"{path}: not valid YAML ({' '.join(str(error).split())})") from None
    return parse_params(raw, path)


def canonical_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """`params` as plain JSON data (tuples become lists, paths strings), the form stored and hashed."""
    return json.loads(json.dumps(dict(params), sort_keys=True, default=str))


def params_hash(params: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of `params` (sorted keys, no whitespace): equal params, equal hash."""
    text = json.dumps(canonical_params(params), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def flatten_params(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"train": {"lr": 1}} -> {"train.lr": 1}; lists and empty mappings stay values."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten_params(value, prefix=f"{name}."))
        else:
            flat[name] = value
    return flat
