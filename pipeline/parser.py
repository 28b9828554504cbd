"""Stage `parser`: the exemplar label parser and its mIoU against the ground truth (paper Sec. 4 parses
exemplars with a COCO-stuff DeepLab-v2; here a torchvision network trained from scratch, a checkpoint,
or the oracle).

dvc.yaml: deps pipeline/parser.py, src/egsynth/parsing/, data/interim/scenes.parquet; params parser;
outs models/parser.pt; metrics reports/metrics/parser.json (cache: false).

Writes `models/parser.pt` (`egsynth.parsing.save_parser`) and `reports/metrics/parser.json`
{"parser": label, "source", "miou", "pixel_accuracy", "classes_evaluated", "test_images", ...}; the
oracle is scored like any parser (mIoU 1.0) and labelled "oracle".
"""

from pathlib import Path

import pandas as pd
from prefect import flow

from egsynth.config import Params
from egsynth.io import atomic_path, write_json_atomic
from egsynth.parsing import evaluate_parser, make_parser, save_parser
from pipeline._stage import run_stage, tracked_stage

SCENES = Path("data/interim/scenes.parquet")
MODEL = Path("models/parser.pt")
REPORT = Path("reports/metrics/parser.json")


@flow(name="parser")
def parser_stage(params: Params) -> None:
    with tracked_stage("parser", params) as run:
        scenes = pd.read_parquet(SCENES)
        parser, history = make_parser(params.parser, scenes)
        for epoch, loss in enumerate(history.get("epoch_loss", [])):
            run.log_metrics({"train_loss": loss}, step=epoch)
        test = scenes[scenes["split"] == "test"]
        scores = evaluate_parser(parser.parse, test, batch_size=params.parser.batch_size)
        with atomic_path(MODEL) as staging:
            save_parser(parser, staging)
        report = {
            "parser": parser.label,
            "source": parser.source,
            "miou": scores["miou"],
            "pixel_accuracy": scores["pixel_accuracy"],
            "classes_evaluated": scores["classes_evaluated"],
            "test_images": len(test),
            "train_images": history.get("train_images", 0),
        }
        write_json_atomic(REPORT, report)
        run.log_metrics({k: v for k, v in report.items() if isinstance(v, int | float) and not isinstance(v, bool)})
        if "seconds" in history:
            run.log_metrics({"train_seconds": history["seconds"]})


if __name__ == "__main__":
    run_stage(parser_stage)
