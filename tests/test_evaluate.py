import math

import pandas as pd
import pytest
import torch

from egsynth.data.datasets import UNLABELED_INDEX, one_hot
from egsynth.evaluation.evaluate import METRICS, class_mean_color, metrics_payload
from egsynth.evaluation.report import combine, markdown_table, table_rows


def test_class_mean_color_paints_each_class_with_the_exemplars_mean_of_it():
    exemplar_labels = torch.tensor([[[0, 0], [1, 1]]])  # class 0 on top, class 1 below
    x2 = torch.tensor([[[[0.2, 0.4], [-1.0, -0.6]]]]).expand(1, 3, 2, 2)
    target_labels = torch.tensor([[[1, 0], [2, UNLABELED_INDEX]]])  # class 2 is absent from the exemplar
    out = class_mean_color(one_hot(target_labels, 4), x2, one_hot(exemplar_labels, 4))
    overall = x2.mean().item()
    expected = torch.tensor([[-0.8, 0.3], [overall, overall]])
    torch.testing.assert_close(out[0, 0], expected)
    torch.testing.assert_close(out[0, 1], expected)


def test_class_mean_color_of_a_constant_exemplar_is_constant():
    labels = one_hot(torch.randint(0, 5, (2, 8, 8)), 5)
    x2 = torch.full((2, 3, 8, 8), 0.25)
    torch.testing.assert_close(class_mean_color(labels, x2, labels), x2)


class _Suite:
    def labels(self):
        return {metric: f"{metric} backbone" for metric in METRICS}


def payload(name: str, psnr: float) -> dict:
    results = {task: {m: 1.0 for m in METRICS} | {"psnr": psnr} for task in ("duplicating", "swap")}
    cases = pd.DataFrame({"task": ["duplicating", "duplicating", "swap"]})
    return metrics_payload(name, results, _Suite(), cases)


def test_metrics_payload_has_every_metric_per_task_and_counts_cases():
    result = payload("full", 17.0)
    assert result["cases"] == {"duplicating": 2, "swap": 1}
    assert all(set(values) == set(METRICS) for values in result["tasks"].values())
    assert set(result["backbones"]) == set(METRICS)


def test_combined_metrics_hold_every_model_task_metric_cell():
    metrics = combine({"full": payload("full", 17.0), "gap": payload("gap", 15.0)}, {"class_mean": payload("c", 16.0)})
    assert set(metrics) == {"full", "gap", "class_mean", "backbones"}
    for model in ("full", "gap", "class_mean"):
        assert {(task, m) for task, values in metrics[model].items() for m in values} == {
            (task, m) for task in ("duplicating", "swap") for m in METRICS
        }


@pytest.mark.parametrize(("metric", "values", "best"), [("psnr", [17.0, 15.0], "full"), ("fid", [30.0, 20.0], "gap")])
def test_best_of_a_row_follows_the_metrics_direction(metric, values, best):
    metrics = {"full": {"duplicating": {metric: values[0]}}, "gap": {"duplicating": {metric: values[1]}}}
    (row,) = [r for r in table_rows(metrics, ["full", "gap"], []) if r.metric == metric]
    assert row.best == best
    assert math.isnan(next(r for r in table_rows(metrics, ["full", "gap"], []) if r.metric == "ssim").values["full"])


def test_markdown_table_bolds_the_best_and_shows_the_papers_number():
    metrics = {"full": {"duplicating": {"psnr": 18.0}}, "gap": {"duplicating": {"psnr": 14.0}}}
    rows = [r for r in table_rows(metrics, ["full", "gap"], ["full"]) if r.metric == "psnr"]
    table = markdown_table(rows, ["full", "gap"], ["full"])
    assert "| duplicating | PSNR ↑ | **18.00** | 14.00 | 17.03 |" in table
