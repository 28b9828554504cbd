"""Stage `baselines`: the evaluation of Sec. 4 for two reference points a trained model must beat.

- `untrained`: the `full` generator at its seeded initialization, never trained;
- `class_mean`: each target pixel painted with the exemplar's mean color of its class;

and the ceiling of layout fidelity: `truth`, the mIoU of the parser on the ground-truth images.

Writes `reports/metrics/baselines.json` ({"untrained": ..., "class_mean": ..., "truth": ...}, each
shaped like a variant's metrics file; `truth` has only "miou" per task, and is absent with the oracle
parser, which has no network to parse images with).
"""

from prefect import flow

from egsynth.config import Params
from egsynth.data.cocostuff import NUM_CLASSES
from egsynth.devices import default_device
from egsynth.evaluation.cases import read_cases
from egsynth.evaluation.evaluate import (
    class_mean_color,
    evaluate_cases,
    generator_synthesizer,
    metric_suite,
    metrics_payload,
    painter,
    truth_layout,
    truth_payload,
)
from egsynth.evaluation.results import model_metrics
from egsynth.io import write_json_atomic
from egsynth.models.generator import build_generator
from pipeline._stage import run_stage, stage_paths, tracked_stage


@flow(name="baselines")
def baselines_stage(params: Params) -> None:
    paths = stage_paths()
    with tracked_stage("baselines", params) as run:
        device = default_device()
        suite = metric_suite(params.evaluate, params.model, parser_path=paths["parser"], device=device)
        cases = read_cases(paths["cases"])
        untrained = build_generator("full", params.model, num_classes=NUM_CLASSES).to(device)
        options = {"image_size": params.manifest.image_size, "batch_size": params.evaluate.batch_size, "device": device}
        payload = {}
        synthesizers = (("untrained", generator_synthesizer(untrained)), ("class_mean", painter(class_mean_color)))
        for name, synthesize in synthesizers:
            evaluation = evaluate_cases(
                synthesize, cases, suite=suite, **options, seed=params.tasks.seed, description=name
            )
            payload[name] = metrics_payload(name, evaluation, suite, cases)
            run.log_metrics({name: model_metrics(payload[name])})
        if suite.layout is not None:
            payload["truth"] = truth_payload(truth_layout(suite.layout, cases, **options), suite.layout, cases)
            run.log_metrics({"truth": model_metrics(payload["truth"])})
        write_json_atomic(paths["baselines_metrics"], payload)


if __name__ == "__main__":
    run_stage(baselines_stage)
