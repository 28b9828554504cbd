import math
import re
import subprocess
import sys

import numpy as np
from PIL import Image

from egsynth.evaluation.report import (
    Figure,
    Row,
    baseline_check,
    combine,
    format_value,
    html_report,
    markdown_report,
    markdown_table,
    table_rows,
)
from egsynth.evaluation.results import METRICS
from tests._repo import REPO


def task_metrics(psnr: float, **others: float) -> dict[str, float]:
    return {metric: others.get(metric, 1.0) for metric in METRICS} | {"psnr": psnr}


def payload(backbone: str = "pixels", **tasks: dict) -> dict:
    return {"tasks": tasks, "backbones": dict.fromkeys(METRICS, backbone)}


METRICS_FILE = combine(
    {
        "full": payload(duplicating=task_metrics(22.0), swap=task_metrics(15.0)),
        "gap": payload(duplicating=task_metrics(17.5), swap=task_metrics(16.0)),
    },
    {
        "untrained": payload(duplicating=task_metrics(11.5), swap=task_metrics(11.0)),
        "class_mean": payload("stand-in", duplicating=task_metrics(21.5), swap=task_metrics(16.5)),
    },
)
MODELS = ["full", "gap", "untrained", "class_mean"]


def test_combine_maps_model_to_task_to_metric_and_joins_the_backbones_of_each_metric():
    assert METRICS_FILE["gap"]["swap"]["psnr"] == 16.0
    assert METRICS_FILE["class_mean"]["duplicating"]["psnr"] == 21.5
    assert METRICS_FILE["backbones"]["fid"] == "pixels; stand-in"


def test_the_best_of_a_row_follows_the_metric_direction_and_skips_missing_values():
    assert Row("swap", "psnr", {"a": 15.0, "b": 16.0, "c": math.nan}, {}).best == "b"
    assert Row("swap", "fid", {"a": 15.0, "b": 16.0, "c": math.nan}, {}).best == "a"
    assert Row("swap", "fid", {"a": math.nan}, {}).best is None


def test_values_are_formatted_per_metric_and_missing_ones_as_a_dash():
    assert format_value("psnr", 17.1049) == "17.10"
    assert format_value("lpips", 0.39749) == "0.397"
    assert format_value("style", 0.000397) == "3.97e-04"
    assert format_value("fid", None) == "–"
    assert format_value("ssim", math.nan) == "–"


def test_the_markdown_table_bolds_exactly_the_best_of_each_row():
    rows = table_rows(METRICS_FILE, MODELS, ["full"])
    table = markdown_table(rows, MODELS, ["full"])
    duplicating_psnr = next(line for line in table.splitlines() if line.startswith("| duplicating | PSNR"))
    assert duplicating_psnr.split(" | ")[2:6] == ["**22.00**", "17.50", "11.50", "21.50"]
    assert duplicating_psnr.endswith("| 17.03 |")  # the paper's full
    assert len(re.findall(r"\*\*", table)) == 2 * len(rows)


def test_the_baseline_check_says_above_or_below_each_baseline_with_the_difference():
    assert baseline_check(METRICS_FILE, MODELS) == [
        "full 22.00 dB: above untrained full 11.50 (+10.50 dB), above class mean color 21.50 (+0.50 dB)",
        "gap 17.50 dB: above untrained full 11.50 (+6.00 dB), below class mean color 21.50 (-4.00 dB)",
    ]
    assert baseline_check(METRICS_FILE, ["full", "gap"]) == []  # no baseline column: nothing to check


def test_both_reports_carry_the_table_the_baseline_check_and_every_figure(tmp_path):
    figure_path = tmp_path / "figures" / "loss_curves.png"
    figure_path.parent.mkdir()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(figure_path)
    figures = [Figure(figure_path, "Training losses", "Generator and discriminator losses per step.")]
    cases = {"duplicating": 2, "swap": 2}

    markdown = markdown_report(METRICS_FILE, MODELS, figures, cases=cases, relative_to=tmp_path)
    assert "Cases per task: duplicating 2, swap 2." in markdown
    assert "- gap 17.50 dB: above untrained full 11.50 (+6.00 dB), below class mean color" in markdown
    assert "![Training losses](figures/loss_curves.png)" in markdown

    page = html_report(METRICS_FILE, MODELS, figures, cases=cases)
    checks = re.search(r'<ul id="baseline-check">(.*?)</ul>', page).group(1)
    assert checks.count("<li>") == 2 and "below class mean color 21.50 (-4.00 dB)" in checks
    assert page.count("data:image/png;base64,") == 1


def guided(psnr: float, miou: float, gain: float) -> dict[str, float]:
    return task_metrics(psnr) | {"miou": miou, "exemplar_gain": gain}


GUIDED_FILE = combine(
    {
        "full": payload(swap=guided(15.0, 0.4, 1.25)) | {"attention": {"entropy": 0.8, "label_match": 0.6}},
        "gap": payload(swap=guided(16.0, 0.35, 0.5)),
    },
    {
        "class_mean": payload(swap=guided(16.5, 0.5, 3.0)),
        "truth": {"tasks": {"swap": {"miou": 0.55}}, "backbones": {"miou": "color parser"}},
    },
)
GUIDED_MODELS = ["full", "gap", "class_mean"]


def test_combine_keeps_attention_for_models_that_attend_and_the_truths_miou():
    assert GUIDED_FILE["full"]["attention"] == {"entropy": 0.8, "label_match": 0.6}
    assert "attention" not in GUIDED_FILE["gap"] and "attention" not in GUIDED_FILE["class_mean"]
    assert GUIDED_FILE["full"]["swap"]["exemplar_gain"] == 1.25
    assert GUIDED_FILE["truth"] == {"swap": {"miou": 0.55}}
    assert GUIDED_FILE["backbones"]["miou"] == "color parser" and GUIDED_FILE["backbones"]["psnr"] == "pixels"


def test_the_guidance_table_has_a_row_per_measured_key_and_the_truth_as_last_column(tmp_path):
    markdown = markdown_report(GUIDED_FILE, GUIDED_MODELS, [], cases={"swap": 2}, relative_to=tmp_path)
    assert "| measure | full | gap | class mean color | ground truth |" in markdown
    assert "| swap: exemplar gain (dB) ↑ | +1.25 | +0.50 | +3.00 | – |" in markdown
    assert "| attention entropy (1 = uniform) | 0.800 | – | – | – |" in markdown
    assert "| attention label match ↑ | 0.600 | – | – | – |" in markdown
    assert "| swap: layout mIoU ↑ | 0.400 | 0.350 | 0.500 | 0.550 |" in markdown
    assert "duplicating: layout mIoU" not in markdown  # no model measured it
    page = html_report(GUIDED_FILE, GUIDED_MODELS, [], cases={"swap": 2})
    table = re.search(r'<table id="guidance">(.*?)</table>', page).group(1)
    assert table.count("<tr>") == 5 and "<th>ground truth</th>" in table and "<td>+3.00</td>" in table


def test_without_guidance_metrics_there_is_no_guidance_table(tmp_path):
    assert '<table id="guidance">' not in html_report(METRICS_FILE, MODELS, [], cases={"swap": 2})
    assert "| measure |" not in markdown_report(METRICS_FILE, MODELS, [], cases={"swap": 2}, relative_to=tmp_path)


def test_the_report_stage_imports_neither_torch_nor_scipy():
    """The report reads numbers and PNGs: its stage process loads no torch (seconds of CPU at each start), so
    the names it shares with the evaluation come from torch-free modules, and scipy only where a figure needs it."""
    check = "import sys, pipeline.report; print(sorted({'torch', 'scipy'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", check], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
