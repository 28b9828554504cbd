"""What `evaluate@VARIANT` and `baselines` leave for the report, without torch: Table 1's metrics and which
way each is better, a metrics payload as the report and MLflow read it, and the files of a variant's showcase.
"""

from __future__ import annotations

METRICS = ("psnr", "ssim", "lpips", "fid", "style")
HIGHER_IS_BETTER = {"psnr": True, "ssim": True, "lpips": False, "fid": False, "style": False}
SAMPLES_NAME = "samples.npz"
"""The outputs of the example cases (`showcase.Showcase.samples`), which the report lays side by side (Fig. 4)."""
FIGURES_INDEX = "figures.json"
"""Each showcase figure's file, title and caption, for the report."""


def model_metrics(payload: dict) -> dict[str, dict[str, float]]:
    """A metrics payload as `reports/metrics.json` and MLflow hold it: task, or "attention", -> metric -> value."""
    return payload["tasks"] | ({"attention": payload["attention"]} if "attention" in payload else {})
