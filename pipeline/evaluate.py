"""Stage `evaluate@VARIANT`: synthesize every evaluation case with a trained generator and score it
per task (Sec. 4, Table 1): PSNR, SSIM, LPIPS, FID and the Gram style loss; and whether it follows its
inputs: layout mIoU per task, the swap task's exemplar gain, the finest MSCA's attention statistics.

Writes `reports/metrics/VARIANT.json` (metrics per task, "attention" for MSCA variants, the backbone
behind each metric, cases per task) and `reports/evaluations/VARIANT/` (sample outputs and the variant's figures, see
`egsynth.evaluation.showcase`); the per-case scores go to the MLflow run as a table.
"""

import sys

import pandas as pd
from prefect import flow

from egsynth.config import Params
from egsynth.devices import default_device
from egsynth.evaluation.attention import TransferMatrix
from egsynth.evaluation.cases import read_cases
from egsynth.evaluation.evaluate import evaluate_cases, generator_synthesizer, metric_suite, metrics_payload
from egsynth.evaluation.results import model_metrics
from egsynth.evaluation.showcase import variant_showcase
from egsynth.io import atomic_path, write_json_atomic
from egsynth.models.generator import load_generator
from pipeline._stage import run_stage, stage_paths, tracked_stage


@flow(name="evaluate")
def evaluate_stage(params: Params, variant: str) -> None:
    paths = stage_paths()
    with tracked_stage(f"evaluate@{variant}", params) as run:
        device = default_device()
        generator = load_generator(paths["variant_models"] / variant / "generator.pt", map_location=device)
        generator = generator.to(device)
        suite = metric_suite(params.evaluate, params.model, parser_path=paths["parser"], device=device)
        cases = read_cases(paths["cases"])
        transfer = TransferMatrix() if generator.spec.msca else None
        evaluation = evaluate_cases(
            generator_synthesizer(generator),
            cases,
            suite=suite,
            image_size=params.manifest.image_size,
            batch_size=params.evaluate.batch_size,
            device=device,
            seed=params.tasks.seed,
            description=variant,
            transfer=transfer,
        )
        payload = metrics_payload(variant, evaluation, suite, cases)
        with atomic_path(paths["evaluations"] / variant, directory=True) as staging:
            variant_showcase(
                generator,
                cases,
                pd.read_parquet(paths["scenes_table"]),
                transfer=transfer,
                config=params.figures,
                image_size=params.manifest.image_size,
                device=device,
                out=staging,
            )
        write_json_atomic(paths["metrics_dir"] / f"{variant}.json", payload)
        run.log_metrics(model_metrics(payload))
        run.log_table(evaluation.scores, "scores.json")


if __name__ == "__main__":
    run_stage(evaluate_stage, sys.argv[1])
