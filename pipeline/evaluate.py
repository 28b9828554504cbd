"""Stage `evaluate@VARIANT`: synthesize every evaluation case with a trained generator and score it
per task (Sec. 4, Table 1): PSNR, SSIM, LPIPS, FID and the Gram style loss; and whether it follows its
inputs: layout mIoU per task, the swap task's exemplar gain, the finest MSCA's attention statistics.

Writes `reports/metrics/VARIANT.json` (metrics per task, "attention" for MSCA variants, the backbone
behind each metric, cases per task) and `reports/evaluations/VARIANT/` (sample outputs and the variant's figures, see
`egsynth.evaluation.showcase`); the per-case scores go to the MLflow run as a table.
"""

import sys
from pathlib import Path

import pandas as pd
from prefect import flow

from egsynth.config import Params
from egsynth.devices import default_device
from egsynth.evaluation.evaluate import (
    evaluate_cases,
    generator_synthesizer,
    metric_suite,
    metrics_payload,
    model_metrics,
)
from egsynth.evaluation.showcase import variant_showcase
from egsynth.evaluation.tasks import read_cases
from egsynth.io import atomic_path, write_json_atomic
from egsynth.models.generator import load_generator
from pipeline._stage import run_stage, tracked_stage

SCENES = Path("data/interim/scenes.parquet")
CASES = Path("data/eval")
PARSER = Path("models/parser.pt")


@flow(name="evaluate")
def evaluate_stage(params: Params, variant: str) -> None:
    with tracked_stage(f"evaluate@{variant}", params) as run:
        device = default_device()
        generator = load_generator(Path("models") / variant / "generator.pt", map_location=device).to(device)
        suite = metric_suite(params.evaluate, params.model, parser_path=PARSER, device=device)
        cases = read_cases(CASES)
        evaluation = evaluate_cases(
            generator_synthesizer(generator),
            cases,
            suite=suite,
            image_size=params.manifest.image_size,
            batch_size=params.evaluate.batch_size,
            device=device,
            seed=params.tasks.seed,
            description=variant,
        )
        payload = metrics_payload(variant, evaluation, suite, cases)
        with atomic_path(Path("reports/evaluations") / variant, directory=True) as staging:
            variant_showcase(
                generator,
                cases,
                pd.read_parquet(SCENES),
                config=params.figures,
                image_size=params.manifest.image_size,
                batch_size=params.evaluate.batch_size,
                device=device,
                out=staging,
            )
        write_json_atomic(Path("reports/metrics") / f"{variant}.json", payload)
        run.log_metrics(model_metrics(payload))
        run.log_table(evaluation.scores, "scores.json")


if __name__ == "__main__":
    run_stage(evaluate_stage, sys.argv[1])
