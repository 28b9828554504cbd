"""Synthesize every evaluation case and score it per task (Sec. 4, Table 1; stage `evaluate@VARIANT`).

A synthesizer maps (c1, x2, c~2) to x^_{2->1}: a trained generator, the untrained generator, or the
"mean color of each exemplar class" baseline. Per task: the mean over cases of PSNR, SSIM, LPIPS and
the Gram style loss, and FID between the task's outputs and its ground truths. Each metric's
backbone is named in `labels` (a stand-in is labelled as one), never implied.

Beside Table 1, the metrics that show whether the output follows its inputs (issue 13):
- `miou` per task, layout fidelity (`layout.py`): the parser's labels of the outputs against c1;
- `exemplar_gain` on swap: the swap PSNR with the true exemplar minus the swap PSNR with the exemplar
  of another swap case (`other_exemplars`), same target labels and ground truth; a synthesizer that
  ignores its exemplar scores exactly 0;
- `entropy` and `label_match` of the finest MSCA's attention over the swap cases (`guidance.py`),
  for synthesizers that attend (MSCA generators).
The last two need the swap task, which only the embedded data has. On request the same pass also
accumulates the transfer matrix of Figs. 10 and 12 (`attention.TransferMatrix`) for the showcase, from
the very syntheses it scores rather than a second synthesis of those cases.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from einops import einsum, reduce
from torch import Tensor
from torch.utils.data import DataLoader
from tqdm import tqdm

from egsynth.config import EvaluateConfig, ModelConfig
from egsynth.data.encoding import one_hot
from egsynth.data.source import DatasetError
from egsynth.evaluation.attention import FINEST_SCALE, TransferMatrix
from egsynth.evaluation.cases import SWAP
from egsynth.evaluation.fid import FIDMetric, fid_metric
from egsynth.evaluation.guidance import AttentionStatistics
from egsynth.evaluation.layout import LayoutFidelity
from egsynth.evaluation.metrics import (
    LPIPSMetric,
    lpips_metric,
    psnr,
    ssim,
    style_distance,
    style_label,
)
from egsynth.evaluation.tasks import CaseDataset
from egsynth.models.features import VGGFeatures
from egsynth.models.generator import Generator
from egsynth.models.msca import AttentionRecord
from egsynth.parsing.parser import load_parser

OTHER_EXEMPLAR_STREAM = 3
"""`tasks.seed`'s random stream for `other_exemplars` (the tasks stage draws streams 0-2)."""
TRANSFER_TASKS = ("retrieving", "swap")
"""The tasks whose exemplar is another scene than the target: the cases the transfer matrix (Fig. 10) counts."""
DERANGEMENT_DRAWS = 1000
"""Cycles `other_exemplars` draws before giving up (for 3 or more cases from the tasks stage, about 1 in 3 fits)."""


@dataclass(frozen=True)
class Synthesis:
    image: Tensor  # x^_{2->1} [B, 3, H, W] in [-1, 1]
    attention: AttentionRecord | None = None  # the finest MSCA's record (scale 0); None for a synthesizer without


Synthesizer = Callable[[Tensor, Tensor, Tensor], Synthesis]
"""(c1 [B, C, H, W] one-hot, x2 [B, 3, H, W] in [-1, 1], c~2 [B, C, H, W] one-hot) -> Synthesis."""


def generator_synthesizer(generator: Generator) -> Synthesizer:
    """A generator in eval mode; MSCA variants also hand over their finest attention record."""
    generator.eval()
    attends = generator.spec.msca

    def synthesize(c1: Tensor, x2: Tensor, c2: Tensor) -> Synthesis:
        output = generator(c1, x2, c2)
        return Synthesis(output.image.clamp(-1, 1), output.attention[FINEST_SCALE] if attends else None)

    return synthesize


def painter(paint: Callable[[Tensor, Tensor, Tensor], Tensor]) -> Synthesizer:
    """A synthesizer without attention from a function of (c1, x2, c~2) to images, e.g. `class_mean_color`."""
    return lambda c1, x2, c2: Synthesis(paint(c1, x2, c2))


def class_mean_color(c1: Tensor, x2: Tensor, c2: Tensor) -> Tensor:
    """Baseline: each target pixel takes the exemplar's mean color of its class, or the exemplar's
    mean color where the exemplar lacks that class (or the pixel is unlabeled)."""
    counts = reduce(c2, "b c h w -> b c", "sum")  # [B, C]
    sums = einsum(x2, c2, "b n h w, b c h w -> b n c")  # [B, 3, C]
    overall = reduce(x2, "b n h w -> b n 1", "mean")  # [B, 3, 1]
    means = torch.where(counts[:, None] > 0, sums / counts[:, None].clamp(min=1), overall)  # [B, 3, C]
    painted = einsum(means, c1, "b n c, b c h w -> b n h w")  # [B, 3, H, W]
    labeled = reduce(c1, "b c h w -> b 1 h w", "sum")  # [B, 1, H, W], 1 on labeled pixels
    return painted + (1 - labeled) * overall[..., None]


@dataclass
class MetricSuite:
    """The metrics of Table 1 plus SSIM and layout fidelity, each with the backbone it runs on."""

    lpips: LPIPSMetric
    fid: FIDMetric  # reset for each task
    style_vgg: VGGFeatures
    layout: LayoutFidelity | None  # reset for each task; None: the parser is the oracle, no network to parse with

    def labels(self) -> dict[str, str]:
        labels = {
            "psnr": "pixels ([0, 1], data range 1)",
            "ssim": "pixels (Gaussian 11x11, sigma 1.5)",
            "lpips": self.lpips.label,
            "fid": self.fid.label,
            "style": f"Gram style loss [9] on {style_label(self.style_vgg)}",
        }
        return labels | ({"miou": self.layout.label} if self.layout is not None else {})


def other_exemplars(swap_cases: pd.DataFrame, *, seed: int) -> pd.DataFrame:
    """The swap cases, each with the exemplar of another swap case (image, parsed labels c~2, scene id) in
    place of its own; target labels and ground truth unchanged. The exemplar gain's control.

    The donor of each case is a seeded cyclic derangement (stream OTHER_EXEMPLAR_STREAM of `seed`,
    `tasks.seed`), redrawn until no case receives its own exemplar scene or an exemplar of its own
    target scene (whose layout is the ground truth's). Needs at least 3 swap cases.
    """
    targets, exemplars = swap_cases["image_id"].to_numpy(), swap_cases["exemplar_id"].to_numpy()
    count = len(swap_cases)
    if count < 3:
        raise DatasetError(f"the exemplar gain needs at least 3 swap cases; the cases table has {count}")
    rng = np.random.default_rng([seed, OTHER_EXEMPLAR_STREAM])
    for _ in range(DERANGEMENT_DRAWS):
        order = rng.permutation(count)
        donors = np.empty(count, dtype=np.int64)
        donors[order] = np.roll(order, -1)  # one cycle through every case: no case is its own donor
        if not ((exemplars[donors] == targets) | (exemplars[donors] == exemplars)).any():
            break
    else:
        raise DatasetError(f"no derangement of the {count} swap cases gives every case an exemplar of another scene")
    moved = swap_cases.iloc[donors]
    columns = ["exemplar_id", "exemplar_path", "exemplar_labels_path"]
    return swap_cases.assign(**{column: moved[column].to_numpy() for column in columns})


def _case_batches(cases: pd.DataFrame, *, image_size: int, batch_size: int, device: torch.device, description: str):
    """(c1 one-hot, x2, c~2 one-hot, truth, c1 class indices) per batch of the cases, on the device."""
    loader = DataLoader(CaseDataset(cases, image_size=image_size), batch_size=batch_size)
    for batch in tqdm(loader, desc=description, unit="batch", leave=False):
        labels = batch["labels"].to(device)
        c2 = one_hot(batch["exemplar_labels"].to(device))
        yield one_hot(labels), batch["exemplar"].to(device), c2, batch["truth"].to(device), labels


@torch.no_grad()
def case_psnr(
    synthesize: Synthesizer, cases: pd.DataFrame, *, image_size: int, batch_size: int, device: torch.device
) -> Tensor:
    """PSNR per case [N] of the synthesizer's outputs against the ground truths, in the table's order."""
    values = [
        psnr(synthesize(c1, x2, c2).image, truth).cpu()
        for c1, x2, c2, truth, _ in _case_batches(
            cases, image_size=image_size, batch_size=batch_size, device=device, description="other exemplars"
        )
    ]
    return torch.cat(values)


@dataclass
class Evaluation:
    tasks: dict[str, dict[str, float]]  # task -> metric -> value: results.METRICS, "miou", and on swap "exemplar_gain"
    attention: dict[str, float] | None  # `guidance.AttentionStatistics.summary` over swap; None if nothing attends
    scores: pd.DataFrame  # per case: case_id, task, each per-case metric (swap: psnr_other_exemplar too)


def evaluate_cases(
    synthesize: Synthesizer,
    cases: pd.DataFrame,  # the tasks stage's cases table
    *,
    suite: MetricSuite,
    image_size: int,
    batch_size: int,
    device: torch.device,
    seed: int,  # `tasks.seed`, for `other_exemplars`
    description: str = "evaluate",
    transfer: TransferMatrix | None = None,  # accumulates the finest attention over TRANSFER_TASKS; None: skipped
) -> Evaluation:
    """Per task the mean of each metric (FID and mIoU over the task's set), the exemplar gain on swap, the
    attention statistics over swap, and the per-case scores; `transfer`, if given, gains the cases of
    TRANSFER_TASKS (nothing for a synthesizer without attention)."""
    results: dict[str, dict[str, float]] = {}
    attention = AttentionStatistics()
    scores = []
    options = {"image_size": image_size, "batch_size": batch_size, "device": device}
    for task, task_cases in cases.groupby("task", sort=False):
        task_cases = task_cases.reset_index(drop=True)
        suite.fid.reset()
        if suite.layout is not None:
            suite.layout.reset()
        per_case: dict[str, list[Tensor]] = {name: [] for name in ("psnr", "ssim", "lpips", "style")}
        for c1, x2, c2, truth, labels in _case_batches(task_cases, **options, description=f"{description} {task}"):
            with torch.no_grad():
                synthesis = synthesize(c1, x2, c2)
                fake = synthesis.image
                per_case["psnr"].append(psnr(fake, truth).cpu())
                per_case["ssim"].append(ssim(fake, truth).cpu())
                per_case["lpips"].append(suite.lpips(fake, truth).cpu())
                per_case["style"].append(style_distance(fake, truth, suite.style_vgg).cpu())
                suite.fid.update(fake, truth)
                if suite.layout is not None:
                    suite.layout.update(fake, labels)
            if task == SWAP and synthesis.attention is not None:
                attention.add(synthesis.attention, c2, c1)
            if transfer is not None and task in TRANSFER_TASKS and synthesis.attention is not None:
                transfer.add(synthesis.attention, c2, c1)
        values = {name: torch.cat(parts) for name, parts in per_case.items()}
        results[str(task)] = {name: float(v.mean()) for name, v in values.items()} | {"fid": suite.fid.compute()}
        if suite.layout is not None:
            results[str(task)]["miou"] = suite.layout.compute()
        if task == SWAP:
            other = case_psnr(synthesize, other_exemplars(task_cases, seed=seed), **options)
            results[SWAP]["exemplar_gain"] = float(values["psnr"].mean()) - float(other.mean())
            values["psnr_other_exemplar"] = other
        scores.append(task_cases[["case_id", "task"]].assign(**{name: v.numpy() for name, v in values.items()}))
    return Evaluation(
        tasks=results,
        attention=attention.summary() if attention.maps else None,
        scores=pd.concat(scores, ignore_index=True),
    )


@torch.no_grad()
def truth_layout(
    layout: LayoutFidelity, cases: pd.DataFrame, *, image_size: int, batch_size: int, device: torch.device
) -> dict[str, dict[str, float]]:
    """Layout fidelity of the ground truths themselves, task -> {"miou"}: the ceiling of each task's mIoU."""
    results = {}
    for task, task_cases in cases.groupby("task", sort=False):
        layout.reset()
        batches = _case_batches(
            task_cases, image_size=image_size, batch_size=batch_size, device=device, description=f"truth {task}"
        )
        for _, _, _, truth, labels in batches:
            layout.update(truth, labels)
        results[str(task)] = {"miou": layout.compute()}
    return results


def _case_counts(cases: pd.DataFrame) -> dict[str, int]:
    return {str(task): int(n) for task, n in cases["task"].value_counts().sort_index().items()}


def metrics_payload(name: str, evaluation: Evaluation, suite: MetricSuite, cases: pd.DataFrame) -> dict:
    """The JSON a variant's evaluation writes: metrics per task, the attention statistics (only for a
    synthesizer that attends), backbones per metric, cases per task."""
    payload = {
        "model": name,
        "tasks": {task: dict(values) for task, values in evaluation.tasks.items()},
        "cases": _case_counts(cases),
        "backbones": suite.labels(),
    }
    return payload | ({"attention": evaluation.attention} if evaluation.attention is not None else {})


def truth_payload(results: dict[str, dict[str, float]], layout: LayoutFidelity, cases: pd.DataFrame) -> dict:
    """The JSON entry of the ground truths: each task's mIoU ceiling (`truth_layout`), shaped like a model's."""
    return {"model": "truth", "tasks": results, "cases": _case_counts(cases), "backbones": {"miou": layout.label}}


def metric_suite(config: EvaluateConfig, model: ModelConfig, *, parser_path: Path, device: torch.device) -> MetricSuite:
    """The metrics `evaluate.lpips_net` / `evaluate.fid_net` ask for; the style loss uses the model's VGG-19;
    layout fidelity the pipeline's parser (none with the oracle parser)."""
    options = {"parser_path": parser_path, "backbone": model.backbone, "seed": model.seed}
    parser = load_parser(parser_path, device=device)
    return MetricSuite(
        lpips=lpips_metric(config.lpips_net, **options).to(device),
        fid=fid_metric(config.fid_net, **options).to(device),
        style_vgg=VGGFeatures(backbone=model.backbone, seed=model.seed, num_scales=model.num_scales).to(device).eval(),
        layout=LayoutFidelity(parser).to(device) if parser.model is not None else None,
    )
