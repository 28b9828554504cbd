"""Synthesize every evaluation case and score it per task (Sec. 4, Table 1; stage `evaluate@VARIANT`).

A synthesizer maps (c1, x2, c~2) to x^_{2->1}: a trained generator, the untrained generator, or the
"mean color of each exemplar class" baseline. Per task: the mean over cases of PSNR, SSIM, LPIPS and
the Gram style loss, and FID between the task's outputs and its ground truths. Each metric's
backbone is named in `labels` (a stand-in is labelled as one), never implied.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from einops import einsum, reduce
from torch import Tensor
from torch.utils.data import DataLoader
from tqdm import tqdm

from egsynth.config import EvaluateConfig, ModelConfig
from egsynth.data.datasets import one_hot
from egsynth.evaluation.metrics import (
    FIDMetric,
    LPIPSMetric,
    fid_metric,
    lpips_metric,
    psnr,
    ssim,
    style_distance,
    style_label,
)
from egsynth.evaluation.tasks import CaseDataset
from egsynth.models.features import VGGFeatures
from egsynth.models.generator import Generator

METRICS = ("psnr", "ssim", "lpips", "fid", "style")
HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "lpips": False, "fid": False, "style": False}

Synthesizer = Callable[[Tensor, Tensor, Tensor], Tensor]
"""(c1 [B, C, H, W] one-hot, x2 [B, 3, H, W] in [-1, 1], c~2 [B, C, H, W] one-hot) -> [B, 3, H, W] in [-1, 1]."""


def generator_synthesizer(generator: Generator) -> Synthesizer:
    generator.eval()
    return lambda c1, x2, c2: generator(c1, x2, c2).image.clamp(-1, 1)


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
    """The metrics of Table 1 plus SSIM, each with the backbone it runs on."""

    lpips: LPIPSMetric
    fid: FIDMetric  # reset for each task
    style_vgg: VGGFeatures

    def labels(self) -> dict[str, str]:
        return {
            "psnr": "pixels ([0, 1], data range 1)",
            "ssim": "pixels (Gaussian 11x11, sigma 1.5)",
            "lpips": self.lpips.label,
            "fid": self.fid.label,
            "style": f"Gram style loss [9] on {style_label(self.style_vgg)}",
        }


def evaluate_cases(
    synthesize: Synthesizer,
    cases: pd.DataFrame,  # the tasks stage's cases table
    *,
    suite: MetricSuite,
    image_size: int,
    batch_size: int,
    device: torch.device,
    description: str = "evaluate",
) -> tuple[dict[str, dict[str, float]], pd.DataFrame]:
    """Per task the mean of each metric (FID over the task's set), and the per-case scores."""
    results: dict[str, dict[str, float]] = {}
    scores = []
    for task, task_cases in cases.groupby("task", sort=False):
        task_cases = task_cases.reset_index(drop=True)
        loader = DataLoader(CaseDataset(task_cases, image_size=image_size), batch_size=batch_size)
        fid = suite.fid
        fid.reset()
        per_case: dict[str, list[Tensor]] = {name: [] for name in ("psnr", "ssim", "lpips", "style")}
        for batch in tqdm(loader, desc=f"{description} {task}", unit="batch", leave=False):
            c1, c2 = one_hot(batch["labels"].to(device)), one_hot(batch["exemplar_labels"].to(device))
            x2, truth = batch["exemplar"].to(device), batch["truth"].to(device)
            with torch.no_grad():
                fake = synthesize(c1, x2, c2)
                per_case["psnr"].append(psnr(fake, truth).cpu())
                per_case["ssim"].append(ssim(fake, truth).cpu())
                per_case["lpips"].append(suite.lpips(fake, truth).cpu())
                per_case["style"].append(style_distance(fake, truth, suite.style_vgg).cpu())
                fid.update(fake, truth)
        values = {name: torch.cat(parts) for name, parts in per_case.items()}
        results[str(task)] = {name: float(v.mean()) for name, v in values.items()} | {"fid": float(fid.compute())}
        scores.append(task_cases[["case_id", "task"]].assign(**{name: v.numpy() for name, v in values.items()}))
    return results, pd.concat(scores, ignore_index=True)


def metrics_payload(name: str, results: dict[str, dict[str, float]], suite: MetricSuite, cases: pd.DataFrame) -> dict:
    """The JSON a variant's evaluation writes: metrics per task, backbones per metric, cases per task."""
    return {
        "model": name,
        "tasks": {task: {metric: results[task][metric] for metric in METRICS} for task in results},
        "cases": {str(task): int(n) for task, n in cases["task"].value_counts().sort_index().items()},
        "backbones": suite.labels(),
    }


def metric_suite(config: EvaluateConfig, model: ModelConfig, *, parser_path: Path, device: torch.device) -> MetricSuite:
    """The metrics `evaluate.lpips_net` / `evaluate.fid_net` ask for; the style loss uses the model's VGG-19."""
    options = {"parser_path": parser_path, "backbone": model.backbone, "seed": model.seed}
    return MetricSuite(
        lpips=lpips_metric(config.lpips_net, **options).to(device),
        fid=fid_metric(config.fid_net, **options).to(device),
        style_vgg=VGGFeatures(backbone=model.backbone, seed=model.seed, num_scales=model.num_scales).to(device).eval(),
    )
