"""Stage `parser`: the exemplar label parser and its mIoU against the ground truth (paper Sec. 4 parses
exemplars with a COCO-stuff DeepLab-v2; here a torchvision network trained from scratch, a checkpoint,
or the oracle).

Writes `models/parser.pt` (`egsynth.parsing.save_parser`) and `reports/metrics/parser.json`
{"parser": label, "source", "miou", "pixel_accuracy", "classes_evaluated", "test_images", ...}; the
oracle is scored like any parser (mIoU 1.0) and labelled "oracle".
"""

import pandas as pd
from prefect import flow

from egsynth.config import Params
from egsynth.io import atomic_path, write_json_atomic
from egsynth.memory import keep_freed_memory
from egsynth.parsing import evaluate_parser, make_parser, save_parser
from pipeline._stage import run_stage, stage_paths, tracked_stage


@flow(name="parser")
def parser_stage(params: Params) -> None:
    paths = stage_paths()
    keep_freed_memory()  # the logits' memory is reused each step instead of page-faulting anew
    with tracked_stage("parser", params) as run:
        scenes = pd.read_parquet(paths["scenes_table"])
        parser, history = make_parser(params.parser, scenes)
        for epoch, loss in enumerate(history.get("epoch_loss", [])):
            run.log_metrics({"train_loss": loss}, step=epoch)
        test = scenes[scenes["split"] == "test"]
        scores = evaluate_parser(parser.parse, test, batch_size=params.parser.batch_size)
        with atomic_path(paths["parser"]) as staging:
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
        write_json_atomic(paths["parser_metrics"], report)
        run.log_metrics({k: v for k, v in report.items() if isinstance(v, int | float) and not isinstance(v, bool)})
        if "seconds" in history:
            run.log_metrics({"train_seconds": history["seconds"]})


if __name__ == "__main__":
    run_stage(parser_stage)
