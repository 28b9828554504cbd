"""What `evaluate@VARIANT` shows besides numbers: sample outputs and the paper's figures for one model.

- `samples.npz`: the outputs of the example cases (the same seeded cases for every variant), which
  the report lays side by side (Fig. 4);
- the 6 x 6 style-structure swap matrix (Fig. 9), spatial interpolation (Fig. 7) and extrapolation
  (Fig. 8) for every variant that supports them;
- for MSCA variants also the K spatial and channel attention maps (Fig. 6), style interpolation
  (Fig. 5), and the label transfer matrix of the finest MSCA with its dendrogram (Figs. 10, 12,
  over the retrieving and swap cases, where exemplar and target differ), which `evaluate_cases`
  accumulates from the syntheses it scores.

`figures.json` lists each figure's file, title and caption for the report.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from egsynth.config import FiguresConfig
from egsynth.data.cocostuff import CATEGORIES
from egsynth.data.encoding import one_hot, to_image
from egsynth.data.labels import read_label_indices
from egsynth.evaluation import figures
from egsynth.evaluation.attention import FINEST_SCALE, TransferMatrix, dendrogram_features
from egsynth.evaluation.results import FIGURES_INDEX, SAMPLES_NAME
from egsynth.evaluation.tasks import CaseDataset
from egsynth.models.generator import Generator
from egsynth.models.manipulation import extrapolate, horizontal_ramp, interpolate, interpolate_spatial

CLASS_NAMES = [category.name for category in CATEGORIES]


def example_cases(cases: pd.DataFrame, *, per_task: int, seed: int) -> pd.DataFrame:
    """`per_task` cases of each task, the same test scenes across tasks, drawn with the seed."""
    image_ids = np.sort(cases["image_id"].unique())
    rng = np.random.default_rng(seed)
    chosen = rng.choice(image_ids, size=min(per_task, len(image_ids)), replace=False)
    picked = cases[cases["image_id"].isin(chosen)]
    return picked.sort_values(["task", "image_id"], kind="stable").reset_index(drop=True)


class Showcase:
    """Runs one generator on the cases each figure chooses and writes its figures under `out`."""

    def __init__(self, generator: Generator, *, image_size: int, device: torch.device, out: Path):
        self.generator = generator.eval()
        self.image_size = image_size
        self.device = device
        self.out = out
        self.index: list[dict[str, str]] = []

    def tensors(self, rows: pd.DataFrame) -> dict[str, torch.Tensor]:
        """The rows' cases as one batch on the device: c1 and c~2 one-hot, x2 and truth in [-1, 1]."""
        batch = next(iter(DataLoader(CaseDataset(rows, image_size=self.image_size), batch_size=len(rows))))
        return {
            "c1": one_hot(batch["labels"].to(self.device)),
            "x2": batch["exemplar"].to(self.device),
            "c2": one_hot(batch["exemplar_labels"].to(self.device)),
            "truth": batch["truth"].to(self.device),
            "labels": batch["labels"],
            "exemplar_labels": batch["exemplar_labels"],
        }

    def record(self, path: Path, title: str, caption: str) -> None:
        self.index.append({"file": path.name, "title": title, "caption": caption})

    @torch.no_grad()
    def samples(self, examples: pd.DataFrame) -> None:
        batch = self.tensors(examples)
        outputs = self.generator(batch["c1"], batch["x2"], batch["c2"]).image
        np.savez_compressed(
            self.out / SAMPLES_NAME,
            case_ids=examples["case_id"].to_numpy(dtype=str),
            outputs=np.stack([to_image(image) for image in outputs]),
        )

    @torch.no_grad()
    def swap_matrix(self, scenes: pd.DataFrame, size: int) -> None:
        """Fig. 9: the labels of scene i in the style of scene j, from the duplicating cases of `size` scenes."""
        rows = scenes.head(size)
        batch = self.tensors(rows)
        outputs = []
        for i in range(len(rows)):
            c1 = batch["c1"][i : i + 1].expand(len(rows), -1, -1, -1)
            outputs.append([to_image(image) for image in self.generator(c1, batch["x2"], batch["c2"]).image])
        path = self.out / "swap_matrix.png"
        figures.swap_matrix(
            structures=[labels.numpy() for labels in batch["labels"]],
            styles=[to_image(image) for image in batch["x2"]],
            outputs=outputs,
            path=path,
        )
        self.record(
            path, "Style-structure swap (Fig. 9)", "Row i: the label map of scene i; column j: in the style of scene j."
        )

    @torch.no_grad()
    def attention(self, rows: pd.DataFrame) -> None:
        """Fig. 6: the K spatial maps α_k over the exemplar and channel maps β_k over the target, finest scale."""
        batch = self.tensors(rows)
        output = self.generator(batch["c1"], batch["x2"], batch["c2"])
        finest = output.attention[FINEST_SCALE]
        for i, case_id in enumerate(rows["case_id"]):
            path = self.out / f"attention_{i}.png"
            figures.attention_maps(
                exemplar=to_image(batch["x2"][i]),
                target_labels=batch["labels"][i].numpy(),
                output=to_image(output.image[i]),
                record_alpha=finest.alpha[i].cpu().numpy(),
                record_beta=finest.beta[i].cpu().numpy(),
                path=path,
            )
            self.record(
                path,
                f"Attention maps, {case_id} (Fig. 6)",
                "Top: spatial attention α_k over the exemplar; bottom: channel attention β_k over the target "
                "(finest MSCA).",
            )

    @torch.no_grad()
    def interpolation(self, rows: pd.DataFrame, steps: int, *, style: bool) -> None:
        """Fig. 5 (style, MSCA only) or Fig. 7 (spatial, a left-to-right ramp): target i between the
        exemplars of cases i + 1 and i + 2."""
        batch = self.tensors(rows)
        ts = np.linspace(0.0, 1.0, steps).tolist()
        labels = [labels.numpy() for labels in batch["labels"]]
        strips = []
        for i in range(len(rows)):
            j, k = (i + 1) % len(rows), (i + 2) % len(rows)
            first = (batch["x2"][j : j + 1], batch["c2"][j : j + 1])
            second = (batch["x2"][k : k + 1], batch["c2"][k : k + 1])
            c1 = batch["c1"][i : i + 1]
            if style:
                images = [interpolate(self.generator, c1, second, first, t)[0] for t in ts]  # B (t = 0) to A
                strips.append(
                    [
                        to_image(second[0][0]),
                        *(to_image(image) for image in images),
                        to_image(first[0][0]),
                    ]
                )
            else:
                ramp = horizontal_ramp(*c1.shape[-2:]).to(self.device)
                image = interpolate_spatial(self.generator, c1, first, second, ramp)[0]
                strips.append([to_image(first[0][0]), to_image(image), to_image(second[0][0])])
        if style:
            path, title = self.out / "style_interpolation.png", "Style interpolation (Fig. 5)"
            caption = "Each row: exemplar B (t = 0), the outputs for t = 0 ... 1 of the way to exemplar A, exemplar A."
            figures.interpolation_strip(strips, ts, path, title=title, target_labels=labels)
        else:
            path, title = self.out / "spatial_interpolation.png", "Spatial interpolation (Fig. 7)"
            caption = (
                "Each row: exemplar A, the output with A's style on the left fading to B's on the right, exemplar B."
            )
            figures.interpolation_strip(strips, None, path, title=title, target_labels=labels)
        self.record(path, title, caption)

    @torch.no_grad()
    def extrapolation(self, row: pd.Series, label_path: str) -> None:
        """Fig. 8: the target's label map at twice the size, from the exemplar patch at the trained size."""
        batch = self.tensors(row.to_frame().T)
        large = torch.from_numpy(read_label_indices(label_path, 2 * self.image_size))[None].to(self.device)
        output = extrapolate(self.generator, one_hot(large), (batch["x2"], batch["c2"]), patch=self.image_size)
        path = self.out / "extrapolation.png"
        figures.extrapolation_figure(to_image(batch["x2"][0]), large[0].cpu().numpy(), to_image(output[0]), path)
        self.record(
            path,
            "Extrapolation (Fig. 8)",
            f"A {2 * self.image_size} px label map from a {self.image_size} px exemplar, overlapping patches blended.",
        )

    def transfer_matrix(self, matrix: TransferMatrix) -> None:
        """Figs. 10 and 12 of a matrix accumulated over the cases whose exemplar is another scene."""
        ratios = matrix.ratios()
        path = self.out / "transfer_matrix.png"
        figures.transfer_matrix_figure(ratios, CLASS_NAMES, path, frequency=matrix.frequency, top=20)
        self.record(
            path,
            "Label transfer matrix of the finest MSCA (Fig. 10)",
            "How the attention carries exemplar classes (rows) to target classes (columns); each column sums to 1.",
        )
        path = self.out / "dendrogram.png"
        figures.dendrogram_figure(dendrogram_features(ratios), CLASS_NAMES, path, frequency=matrix.frequency, top=25)
        self.record(
            path,
            "Clustering of classes by their transfer rows (Fig. 12)",
            "Average-linkage dendrogram of the transfer matrix rows, diagonal set to each row's second-largest value.",
        )

    def write_index(self) -> None:
        (self.out / FIGURES_INDEX).write_text(json.dumps(self.index, indent=2) + "\n")


def variant_showcase(
    generator: Generator,
    cases: pd.DataFrame,
    scenes: pd.DataFrame,  # the filter stage's table (label paths at full size, for extrapolation)
    *,
    transfer: TransferMatrix | None,  # MSCA variants: `evaluate_cases`'s, over its TRANSFER_TASKS; else None
    config: FiguresConfig,
    image_size: int,
    device: torch.device,
    out: Path,
) -> None:
    """Write `samples.npz`, every figure the variant supports, and `figures.json` into `out`."""
    if generator.spec.msca and transfer is None:
        raise ValueError(f"variant {generator.variant!r} attends: its showcase needs the transfer matrix (Fig. 10)")
    showcase = Showcase(generator, image_size=image_size, device=device, out=out)
    examples = example_cases(cases, per_task=config.examples, seed=config.seed)
    showcase.samples(examples)
    duplicating = example_cases(cases[cases["task"] == "duplicating"], per_task=config.swap_size, seed=config.seed)
    showcase.swap_matrix(duplicating, config.swap_size)
    shown = examples[examples["task"] == ("swap" if "swap" in set(cases["task"]) else "retrieving")]
    spec = generator.spec
    if spec.aligns:
        showcase.interpolation(duplicating.head(3), config.interpolation_steps, style=False)
    if spec.msca:
        showcase.attention(shown.head(2))
        showcase.interpolation(duplicating.head(3), config.interpolation_steps, style=True)
        showcase.transfer_matrix(transfer)
    label_path = scenes.set_index("image_id").loc[int(shown.iloc[0]["image_id"]), "label_path"]
    showcase.extrapolation(shown.iloc[0], label_path)
    showcase.write_index()
