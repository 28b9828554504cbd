"""A trained generator on a user's own files: what `egsynth synthesize`, `interpolate` and `extrapolate` run.

- synthesis: x̂ = G(c1, x2, c̃2) of Fig. 2 (Eq. 1-8, Sec. 3.3) for a label map c1 and an exemplar
  photo x2 whose label map c̃2 is given or parsed by the pipeline's parser (Sec. 4, "Implementation
  details"), with the MSCA attention of every scale (α of Eq. 4, g of Eq. 6, β of Eq. 7; Fig. 6);
- style interpolation between two exemplars (Sec. 4, "Interpolation", Fig. 5), its spatial
  left-to-right form (Fig. 7) and extrapolation of a large label map from an exemplar patch (Fig. 8),
  all from `egsynth.models.manipulation`.

Label maps are stuffthingmaps PNGs (COCO-stuff id - 1, 255 unlabeled) as the pipeline writes them;
images are 8-bit RGB. Every file is read and checked before the generator runs, and a file that
cannot be used raises `InputError` naming it; images larger than `max_side` are refused from their
header, before any pixel is decoded. Outputs are refused before any work when they would overwrite an
input or a file DVC tracks (`egsynth.user_input`, before torch loads), and written all together, atomically
(`egsynth.io.atomic_paths`), once everything is computed: a failure never leaves a partial output set
nor replaces a good one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from egsynth.data.encoding import one_hot, to_image, to_image_tensor
from egsynth.data.labels import UNLABELED_INDEX, label_indices, unknown_label_values
from egsynth.data.source import DatasetError
from egsynth.devices import default_device
from egsynth.evaluation import figures
from egsynth.io import UNREADABLE, BadInput, atomic_paths, reading_error
from egsynth.models.features import BackboneWeightsInvalid, BackboneWeightsMissing
from egsynth.models.generator import Generator, GeneratorFileError, load_generator
from egsynth.models.manipulation import extrapolate, horizontal_ramp, interpolate, interpolate_spatial
from egsynth.models.msca import AttentionRecord
from egsynth.models.variants import VARIANTS
from egsynth.parsing.data import read_label_map
from egsynth.parsing.parser import Parser, ParserError, load_parser, predict_labels
from egsynth.user_input import ATTENTION_ARRAYS, InputError

MODE_NAMES = {
    "1": "1-bit black and white",
    "L": "8-bit grayscale",
    "LA": "grayscale with alpha",
    "P": "palette",
    "RGBA": "RGBA (with alpha)",
    "CMYK": "CMYK",
    "I": "32-bit integer grayscale",
    "I;16": "16-bit grayscale",
    "F": "32-bit float grayscale",
}
"""Pillow modes an exemplar may wrongly have, in words."""

MSCA_NAMES = ", ".join(name for name, spec in VARIANTS.items() if spec.msca)
"""The variants with MSCA attention, named in the refusals of those that lack it."""


# ---------------------------------------------------------------------------------------------
# reading and checking files


def read_rgb_image(path: Path) -> np.ndarray:
    """An 8-bit RGB image as uint8 [H, W, 3]. Grayscale, alpha, palette and 16-bit images are refused, not
    converted: the generator was trained on RGB photos, and a silent conversion hides a wrong file."""
    try:
        with Image.open(path) as image:
            if image.mode != "RGB":
                raise InputError(f"{path}: expected an 8-bit RGB image, got {MODE_NAMES.get(image.mode, image.mode)}")
            if any(";16" in str(tile.args) for tile in image.tile):  # Pillow reads 48-bit PNGs as mode RGB
                raise InputError(f"{path}: expected an 8-bit RGB image, got 16 bits per channel")
            return np.array(image)  # [H, W, 3], writable (torch.from_numpy warns on read-only arrays)
    except BadInput:
        raise
    except UNREADABLE as error:
        raise reading_error(path, error) from None


def class_indices(values: np.ndarray, path: Path, *, num_classes: int) -> np.ndarray:
    """stuffthingmaps values [H, W] -> the class indices [H, W] uint8 of one_hot (UNLABELED_INDEX where
    unlabeled), refusing values of no COCO-stuff class and classes beyond the model's `num_classes`."""
    unknown = unknown_label_values(values)
    if unknown:
        raise InputError(
            f"{path}: values {unknown[:10]} are no COCO-stuff label (id - 1, or 255 unlabeled); not a label map"
        )
    indices = label_indices(values)  # [H, W] uint8
    beyond = (indices >= num_classes) & (indices != UNLABELED_INDEX)
    if beyond.any():
        listed = np.unique(values[beyond]).tolist()[:10]
        raise InputError(f"{path}: label values {listed} are classes the model does not know (it has {num_classes})")
    return indices


def read_labels_for_model(path: Path, *, num_classes: int) -> np.ndarray:
    """A user's stuffthingmaps PNG at its own size as class indices [H, W] uint8 (see `class_indices`), errors as
    `InputError`; the pipeline's own label maps are read by `egsynth.data.datasets.read_label_indices`."""
    try:
        values = read_label_map(path)  # [H, W] uint8
    except DatasetError as error:
        raise InputError(str(error)) from None
    except UNREADABLE as error:  # read_label_map names missing and undecodable files; these are the rest
        raise reading_error(path, error) from None
    return class_indices(values, path, num_classes=num_classes)


def resolve_device(name: str | None) -> torch.device:
    """The device `name` (e.g. cpu, cuda, cuda:1), or CUDA when present and else the CPU."""
    if name is None:
        return default_device()
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"--device {name}: not a torch device (e.g. cpu, cuda, cuda:1)") from None
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise InputError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA devices")
    return device


def load_model(path: Path, *, device: torch.device) -> Generator:
    """The generator saved at `path` on `device`, eval mode; InputError for a missing or unusable file."""
    if not path.is_file():
        raise InputError(f"{path}: generator file not found")
    try:
        return load_generator(path, map_location=device).to(device)
    except GeneratorFileError as error:
        raise InputError(str(error)) from None
    except (BackboneWeightsMissing, BackboneWeightsInvalid) as error:
        raise InputError(f"{path}: its VGG-19 backbone cannot be rebuilt: {error}") from None


# ---------------------------------------------------------------------------------------------
# inputs


@dataclass(frozen=True)
class TargetInput:
    """The target label map c1."""

    path: Path
    labels: np.ndarray  # uint8 [H1, W1] class indices, UNLABELED_INDEX where unlabeled


@dataclass(frozen=True)
class ExemplarInput:
    """An exemplar photo x2 with its label map c̃2 (given, or parsed from the photo)."""

    path: Path
    image: np.ndarray  # uint8 [H2, W2, 3]
    labels: np.ndarray  # uint8 [H2, W2] class indices, UNLABELED_INDEX where unlabeled


class Synthesizer:
    """A trained generator on one device that reads and checks the user's files, then runs Fig. 2's G or a
    style manipulation on them. The parser is loaded only when an exemplar comes without its label map."""

    def __init__(self, model: Path, *, parser: Path, device: torch.device):
        self.model_path = model
        self.parser_path = parser
        self.device = device
        self.generator = load_model(model, device=device)
        self._parser: Parser | None = None

    @property
    def num_classes(self) -> int:
        """C of the generator's one-hot label maps."""
        return self.generator.label_encoder.num_classes

    @property
    def min_side(self) -> int:
        """Smallest side the generator takes: at the coarsest scale L, SPADE's instance norm needs 2x2 pixels."""
        return 2 ** (self.generator.num_scales + 1)

    def check_attention_maps(self) -> None:
        """Refuse, before any work, to draw attention maps of a generator without MSCA (Eq. 4-8)."""
        if not self.generator.spec.msca:
            raise InputError(
                f"{self.model_path}: the {self.generator.variant} generator has no MSCA attention maps to write "
                f"(variants with them: {MSCA_NAMES})"
            )

    def _check_size(self, path: Path, height: int, width: int) -> None:
        if min(height, width) < self.min_side:
            raise InputError(
                f"{path}: {width}x{height} is too small; the model's {self.generator.num_scales + 1} scales need "
                f"at least {self.min_side} px per side"
            )

    def read_target(self, path: Path) -> TargetInput:
        labels = read_labels_for_model(path, num_classes=self.num_classes)
        self._check_size(path, *labels.shape)
        return TargetInput(path=path, labels=labels)

    def read_exemplar(self, path: Path, labels: Path | None = None) -> ExemplarInput:
        """The photo at `path` with the label map `labels` of its size, or, without one, the parser's."""
        image = read_rgb_image(path)
        self._check_size(path, *image.shape[:2])
        if labels is None:
            indices = class_indices(self._parse(path, image), self.parser_path, num_classes=self.num_classes)
        else:
            indices = read_labels_for_model(labels, num_classes=self.num_classes)
            if indices.shape != image.shape[:2]:
                raise InputError(
                    f"{labels}: label map is {indices.shape[1]}x{indices.shape[0]} but its exemplar {path} is "
                    f"{image.shape[1]}x{image.shape[0]}"
                )
        return ExemplarInput(path=path, image=image, labels=indices)

    def _parse(self, path: Path, image: np.ndarray) -> np.ndarray:
        """c̃2 of the photo by the pipeline's parser (Sec. 4: DeepLab's parse of the exemplar), stuffthingmaps values."""
        if self._parser is None:
            try:
                self._parser = load_parser(self.parser_path, device=self.device)
            except ParserError as error:
                raise InputError(f"{error}; it is needed to parse {path}, given without a label map") from None
        if self._parser.model is None:
            raise InputError(
                f"{self.parser_path}: the {self._parser.label} parser reads ground truth and cannot parse {path}; "
                "give its label map"
            )
        (values,) = predict_labels(self._parser.model, [image], image_size=self._parser.image_size)
        return values  # [H2, W2] uint8

    # -- tensors --

    def _labels(self, labels: np.ndarray) -> torch.Tensor:
        return one_hot(torch.from_numpy(labels)[None].to(self.device), self.num_classes)  # [1, C, H, W]

    def _exemplar(self, exemplar: ExemplarInput) -> tuple[torch.Tensor, torch.Tensor]:
        """(x2 [1, 3, H2, W2] in [-1, 1], c̃2 [1, C, H2, W2] one-hot)."""
        return to_image_tensor(exemplar.image)[None].to(self.device), self._labels(exemplar.labels)

    # -- the generator --

    @torch.no_grad()
    def synthesize(self, target: TargetInput, exemplar: ExemplarInput) -> tuple[np.ndarray, list[AttentionRecord]]:
        """x̂ = G(c1, x2, c̃2) as uint8 RGB [H1, W1, 3], and the attention records per scale, finest first."""
        output = self.generator(self._labels(target.labels), *self._exemplar(exemplar))
        return to_image(output.image[0]), output.attention

    @torch.no_grad()
    def interpolate(self, target: TargetInput, a: ExemplarInput, b: ExemplarInput, ts: list[float]) -> list[np.ndarray]:
        """Style interpolation (Sec. 4, "Interpolation"): for each t, c1 in a style t of the way from exemplar
        `a` (t = 0, the same image as `synthesize` with `a`) to `b` (t = 1); MSCA variants only."""
        if not self.generator.spec.msca:
            raise InputError(
                f"{self.model_path}: style interpolation mixes MSCA attention, which the {self.generator.variant} "
                f"generator lacks (use a {MSCA_NAMES} model, or spatial interpolation)"
            )
        c1 = self._labels(target.labels)
        first, second = self._exemplar(a), self._exemplar(b)
        return [to_image(interpolate(self.generator, c1, first, second, t)[0]) for t in ts]

    @torch.no_grad()
    def interpolate_spatial(self, target: TargetInput, left: ExemplarInput, right: ExemplarInput) -> np.ndarray:
        """Spatial interpolation (Fig. 7): `left`'s style at the left edge fading linearly to `right`'s at the
        right edge, by mixing the two exemplars' aligned features F_x1 per location."""
        if not self.generator.spec.aligns:
            raise InputError(
                f"{self.model_path}: spatial interpolation needs aligned features; {self.generator.variant} has none"
            )
        c1 = self._labels(target.labels)
        ramp = horizontal_ramp(*target.labels.shape).to(self.device)  # [1, 1, H1, W1], 1 at the left edge
        image = interpolate_spatial(self.generator, c1, self._exemplar(left), self._exemplar(right), ramp)
        return to_image(image[0])

    @torch.no_grad()
    def extrapolate(
        self, target: TargetInput, exemplar: ExemplarInput, *, patch: int | None, num_random: int, seed: int
    ) -> np.ndarray:
        """Extrapolation (Fig. 8): a label map larger than the exemplar, synthesized as overlapping `patch`
        squares (default: the exemplar's shorter side) at the four corners, `num_random` seeded random
        positions and wherever those leave a gap, blended with weights falling off toward patch borders."""
        patch = min(exemplar.image.shape[:2]) if patch is None else patch
        height, width = target.labels.shape
        if patch < self.min_side:
            raise InputError(f"--patch {patch}: the model needs at least {self.min_side} px per side")
        if patch > min(height, width):
            raise InputError(f"{target.path}: label map {width}x{height} is smaller than the {patch} px patch")
        image = extrapolate(
            self.generator,
            self._labels(target.labels),
            self._exemplar(exemplar),
            patch=patch,
            num_random=num_random,
            seed=seed,
        )
        return to_image(image[0])


# ---------------------------------------------------------------------------------------------
# writing


def write_pngs(images: dict[Path, np.ndarray]) -> None:
    """uint8 RGB images [H, W, 3] as PNGs, all together (`atomic_paths`): every one or none."""
    write_outputs(images)


def attention_paths(directory: Path, records: list[AttentionRecord]) -> list[Path]:
    """What `write_outputs` writes into an attention directory: a figure per scale, then the raw maps."""
    return [directory / f"attention_scale{scale}.png" for scale in range(len(records))] + [directory / ATTENTION_ARRAYS]


def write_outputs(
    images: dict[Path, np.ndarray],
    attention: Path | None = None,
    *,
    target: TargetInput | None = None,
    exemplar: ExemplarInput | None = None,
    records: list[AttentionRecord] | None = None,
) -> list[Path]:
    """The PNGs `images` and, with an `attention` directory, Fig. 6 for every MSCA scale i of the first image
    (`attention_scale<i>.png`: α_k over the exemplar above β_k over the target, gates in the headers) and the
    raw maps in `attention.npz`, all together: every file is staged first, and only then are all renamed into
    place, so a failure leaves none of them. Returns the files written."""
    figures_at = [] if attention is None else attention_paths(attention, records)
    paths = [*images, *figures_at]
    writing = paths[0]  # what an error is about
    try:
        with atomic_paths(paths) as staged:
            for path, temporary in zip(images, staged, strict=False):
                writing = path
                Image.fromarray(images[path]).save(temporary, format="PNG")
            if attention is not None:
                writing = attention
                _stage_attention_maps(staged[len(images) :], target, exemplar, next(iter(images.values())), records)
    except OSError as error:
        raise InputError(f"{writing}: cannot be written ({error.strerror or error})") from None
    return paths


def _stage_attention_maps(
    staged: list[Path], target: TargetInput, exemplar: ExemplarInput, output: np.ndarray, records: list[AttentionRecord]
) -> None:
    assert records and all(r.alpha is not None and r.beta is not None for r in records), "expects MSCA records"
    arrays: dict[str, np.ndarray] = {}
    for scale, (record, path) in enumerate(zip(records, staged, strict=False)):
        alpha, beta = record.alpha[0].cpu().numpy(), record.beta[0].cpu().numpy()  # [K, H2, W2], [K, H1, W1]
        gate = record.gate[0].cpu().numpy()  # [K]
        arrays |= {f"alpha_{scale}": alpha, f"gate_{scale}": gate, f"beta_{scale}": beta}
        figures.attention_maps(
            exemplar.image,
            target.labels,
            output,
            alpha,
            beta,
            path,
            gate=gate,
            exemplar_labels=exemplar.labels,
            title=f"MSCA attention at scale {scale} ({beta.shape[2]}x{beta.shape[1]} target)",
        )
    with staged[-1].open("wb") as file:
        np.savez_compressed(file, **arrays)
