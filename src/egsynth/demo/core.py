"""What the demo page does, apart from the web: choices, synthesis, where a pixel's style came from, the slider.

- The choices: the scenes of the `tasks` stage (`data/eval/duplicating/ID/`: the label map c1, the scene's
  photo and the parser's labels c̃2 of it) and the generators of the `train` stage (`models/VARIANT/generator.pt`).
- A synthesis x̂ = G(c1, x2, c̃2) (Fig. 2) of a chosen or uploaded label map and exemplar, through
  `egsynth.synthesis.Synthesizer`: every upload is read and refused exactly as the CLI reads and refuses a file,
  with the same one-line message naming it by the name the user gave it.
- Where one output pixel p drew its style from, at each MSCA scale (Eq. 4-8): `pixel_attention.py`.
- The slider: style interpolation between two exemplars (Sec. 4, "Interpolation", Fig. 5).
"""

from __future__ import annotations

import secrets
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from egsynth.data.cocostuff import CATEGORIES
from egsynth.data.labels import UNLABELED_INDEX
from egsynth.demo.pixel_attention import PixelAttention, explain_pixel
from egsynth.evaluation.figures import PALETTE
from egsynth.io import DEFAULT_MAX_IMAGE_SIDE, BadInput, check_image_file
from egsynth.models.msca import AttentionRecord
from egsynth.synthesis import ExemplarInput, InputError, Synthesizer, TargetInput

SCENES_TASK = "duplicating"
"""The `tasks` stage's case directories whose files are one scene's: its label map, its photo, the photo's parse."""

SCENE_FILES = ("labels.png", "exemplar.png", "exemplar_labels.png")

KEPT_SYNTHESES = 8
"""Recent syntheses whose attention a click can still ask for (each holds every scale's α and β)."""

LOADED_MODELS = 3
"""Generators kept loaded at once; another is loaded from its file when picked."""


# ---------------------------------------------------------------------------------------------
# choices


@dataclass(frozen=True)
class Scene:
    """An evaluation scene, offered as a target (its label map) and as an exemplar (its photo and parse)."""

    name: str
    labels: Path  # c1
    photo: Path  # x2
    photo_labels: Path  # c̃2, the parser's labels of the photo


def list_scenes(eval_dir: Path) -> dict[str, Scene]:
    """The scenes under `eval_dir/duplicating/`, by name (the image id), each with all three files."""
    root = eval_dir / SCENES_TASK
    if not root.is_dir():
        return {}
    scenes = {}
    for directory in sorted(root.iterdir()):
        files = [directory / name for name in SCENE_FILES]
        if all(path.is_file() for path in files):
            scenes[directory.name] = Scene(directory.name, *files)
    return scenes


def list_models(models_dir: Path, default: Path) -> tuple[dict[str, Path], str]:
    """(name -> generator file, the default's name): every `models_dir/VARIANT/generator.pt` named VARIANT, and
    `default` wherever it lies, named by its directory, or by its path when that name is another file's."""
    models = {path.parent.name: path for path in sorted(models_dir.glob("*/generator.pt"))}
    for name, path in models.items():
        if path.resolve() == default.resolve():
            return models, name
    name = default.parent.name if default.parent.name and default.parent.name not in models else str(default)
    return {name: default, **models}, name


@dataclass(frozen=True)
class ClassInfo:
    """A class as the page names and colors it (the figures' palette)."""

    index: int  # contiguous class index, UNLABELED_INDEX for unlabeled
    name: str
    color: str  # "#rrggbb"


def class_info(index: int) -> ClassInfo:
    name = "unlabeled" if index == UNLABELED_INDEX else CATEGORIES[index].name
    return ClassInfo(index=index, name=name, color="#{:02x}{:02x}{:02x}".format(*PALETTE[index]))


def legend(*label_maps: np.ndarray) -> list[ClassInfo]:
    """The classes present in any of the label maps (uint8 class indices [H, W]), by index, unlabeled last."""
    present = sorted(set().union(*(np.unique(labels).tolist() for labels in label_maps)))
    return [class_info(index) for index in present]


# ---------------------------------------------------------------------------------------------
# uploads


@dataclass(frozen=True)
class Upload:
    """A file sent from the page; errors name it `name`, as the CLI names a file by the path it was given."""

    name: str
    data: bytes


def _file_name(name: str) -> str:
    """`name` without any directory, or "upload" when nothing usable is left."""
    base = Path(name.replace("\\", "/")).name[:100]
    return "upload" if base in {"", ".", ".."} or "\0" in base else base


@contextmanager
def _staged(uploads: dict[str, Upload]) -> Iterator[dict[str, Path]]:
    """Each upload written to a temporary file under its own name, for the CLI's readers; a `BadInput` raised
    inside names the upload as the user named it, not the temporary file. The files are gone on exit."""
    with tempfile.TemporaryDirectory(prefix="egsynth-demo-") as directory:
        paths = {}
        for role, upload in uploads.items():
            path = Path(directory) / role / _file_name(upload.name)
            path.parent.mkdir()
            path.write_bytes(upload.data)
            paths[role] = path
        try:
            yield paths
        except BadInput as error:
            message = str(error)
            for path in paths.values():
                message = message.replace(str(path), path.name)
            raise InputError(message) from None


# ---------------------------------------------------------------------------------------------
# the demo


@dataclass(frozen=True)
class Synthesis:
    """One synthesis the page shows, kept so that a click on its output can ask where a pixel's style came from."""

    id: str
    model: str
    variant: str
    target: TargetInput
    exemplar: ExemplarInput
    target_name: str
    exemplar_name: str
    image: np.ndarray  # x̂ uint8 [H1, W1, 3]
    records: list[AttentionRecord]  # per scale, finest first, on the CPU
    seconds: float  # reading the inputs and the generator pass

    @property
    def has_attention(self) -> bool:
        """Whether every scale has α and β to show (MSCA variants and no_att; not gap, spade_vae, full_attention)."""
        return bool(self.records) and all(r.alpha is not None and r.beta is not None for r in self.records)


def _on_cpu(record: AttentionRecord) -> AttentionRecord:
    alpha, gate, beta = (None if t is None else t.detach().cpu() for t in (record.alpha, record.gate, record.beta))
    return AttentionRecord(alpha=alpha, gate=gate, beta=beta)


class Demo:
    """The generators, scenes and parser the page offers, and the syntheses it made lately. One request runs at a
    time (a lock): the generator's memory, not its speed, bounds a small machine."""

    def __init__(
        self,
        *,
        models: dict[str, Path],  # name -> generator file (`list_models`)
        default_model: str,  # loaded now, so that a missing or unusable file stops the command
        parser: Path,  # parses an uploaded exemplar given without its label map
        scenes: dict[str, Scene],  # `list_scenes`
        device: torch.device,
        max_side: int = DEFAULT_MAX_IMAGE_SIDE,  # larger uploads are refused from their header, as by the CLI
    ):
        self.models = models
        self.default_model = default_model
        self.parser = parser
        self.scenes = scenes
        self.device = device
        self.max_side = max_side
        self._loaded: OrderedDict[str, Synthesizer] = OrderedDict()
        self._kept: OrderedDict[str, Synthesis] = OrderedDict()
        self._lock = threading.Lock()
        self._synthesizer(default_model)

    def _synthesizer(self, model: str) -> Synthesizer:
        if model not in self.models:
            raise InputError(f"{model}: no such model (choices: {', '.join(self.models)})")
        if model not in self._loaded:
            self._loaded[model] = Synthesizer(self.models[model], parser=self.parser, device=self.device)
            while len(self._loaded) > LOADED_MODELS:
                self._loaded.popitem(last=False)
        self._loaded.move_to_end(model)
        return self._loaded[model]

    def _scene(self, name: str) -> Scene:
        if name not in self.scenes:
            raise InputError(f"{name}: no such scene (the scenes are the tasks stage's {SCENES_TASK} cases)")
        return self.scenes[name]

    def _read_exemplar(
        self,
        synthesizer: Synthesizer,
        exemplar: str | Upload,
        labels: Upload | None,
        staged: dict[str, Path],
        role: str,
    ) -> ExemplarInput:
        if isinstance(exemplar, Upload):
            return synthesizer.read_exemplar(staged[role], staged.get(f"{role}_labels"))
        scene = self._scene(exemplar)
        return synthesizer.read_exemplar(scene.photo, scene.photo_labels)

    @staticmethod
    def _check_pairing(exemplar: str | Upload, labels: Upload | None) -> None:
        if labels is not None and not isinstance(exemplar, Upload):
            raise InputError(f"{labels.name}: a scene's exemplar comes with its own label map; upload the photo too")

    @staticmethod
    def _uploads(**files: str | Upload | None) -> dict[str, Upload]:
        return {role: file for role, file in files.items() if isinstance(file, Upload)}

    def _check_headers(self, staged: dict[str, Path]) -> None:
        """Refuse missing, unreadable and too large uploads from their headers before decoding, as the CLI does."""
        for path in staged.values():
            check_image_file(path, max_side=self.max_side)

    def synthesize(
        self, model: str, target: str | Upload, exemplar: str | Upload, exemplar_labels: Upload | None = None
    ) -> Synthesis:
        """x̂ = G(c1, x2, c̃2) of a scene's or an uploaded label map c1 in the style of a scene's or an uploaded
        photo x2; an uploaded photo comes with its label map c̃2 or is parsed. `InputError` for any bad upload."""
        start = time.perf_counter()
        self._check_pairing(exemplar, exemplar_labels)
        with self._lock:
            synthesizer = self._synthesizer(model)
            with _staged(self._uploads(target=target, exemplar=exemplar, exemplar_labels=exemplar_labels)) as staged:
                self._check_headers(staged)
                labels = staged["target"] if isinstance(target, Upload) else self._scene(target).labels
                target_input = synthesizer.read_target(labels)
                exemplar_input = self._read_exemplar(synthesizer, exemplar, exemplar_labels, staged, "exemplar")
            image, records = synthesizer.synthesize(target_input, exemplar_input)
            result = Synthesis(
                id=secrets.token_hex(8),
                model=model,
                variant=synthesizer.generator.variant,
                target=target_input,
                exemplar=exemplar_input,
                target_name=target.name if isinstance(target, Upload) else target,
                exemplar_name=exemplar.name if isinstance(exemplar, Upload) else exemplar,
                image=image,
                records=[_on_cpu(record) for record in records],
                seconds=time.perf_counter() - start,
            )
            self._kept[result.id] = result
            while len(self._kept) > KEPT_SYNTHESES:
                self._kept.popitem(last=False)
            return result

    def synthesis(self, synthesis_id: str) -> Synthesis:
        with self._lock:
            if synthesis_id not in self._kept:
                raise InputError(
                    f"synthesis {synthesis_id} is no longer kept (the last {KEPT_SYNTHESES} are); synthesize again"
                )
            return self._kept[synthesis_id]

    def explain(self, synthesis_id: str, *, x: int, y: int) -> PixelAttention:
        """Where output pixel (x, y) of a kept synthesis drew its style from, at every scale."""
        result = self.synthesis(synthesis_id)
        height, width = result.target.labels.shape
        if not (0 <= x < width and 0 <= y < height):
            raise InputError(f"pixel ({x}, {y}) lies outside the {width}x{height} output")
        if not result.has_attention:
            raise InputError(
                f"{result.model}: the {result.variant} generator has no spatial and channel attention to show "
                "(pick full, no_fm or no_global)"
            )
        return explain_pixel(result.records, result.target, result.exemplar, y=y, x=x)

    def mix(
        self, synthesis_id: str, exemplar_b: str | Upload, labels_b: Upload | None, t: float
    ) -> tuple[np.ndarray, ExemplarInput]:
        """The kept synthesis's target in a style t of the way from its exemplar (t = 0: its output) to exemplar
        B (t = 1: the output with B), by mixing the two exemplars' spatial attention (Sec. 4, Fig. 5); and B."""
        if not 0.0 <= t <= 1.0:
            raise InputError(f"t {t}: the interpolation factor must lie in [0, 1]")
        self._check_pairing(exemplar_b, labels_b)
        result = self.synthesis(synthesis_id)
        with self._lock:
            synthesizer = self._synthesizer(result.model)
            with _staged(self._uploads(exemplar_b=exemplar_b, exemplar_b_labels=labels_b)) as staged:
                self._check_headers(staged)
                b = self._read_exemplar(synthesizer, exemplar_b, labels_b, staged, "exemplar_b")
            (image,) = synthesizer.interpolate(result.target, result.exemplar, b, [t])
            return image, b
