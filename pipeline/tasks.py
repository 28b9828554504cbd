"""Stage `tasks`: the evaluation cases of Sec. 4, built once for every variant (`egsynth.evaluation.tasks`).

Duplicating, mirroring, retrieving (label-histogram pool, dense SIFT correspondence, color-corrected
ground truth) and, on the embedded data, the exact style swap. Writes `data/eval/` (cases.parquet,
candidates.parquet and each case's PNGs) at the generators' global size `manifest.image_size`.
"""

import pandas as pd
from prefect import flow

from egsynth.config import Params
from egsynth.data.embedded import SIDECAR_NAME
from egsynth.evaluation.tasks import build_tasks
from egsynth.io import atomic_path
from pipeline._stage import run_stage, stage_paths, tracked_stage

# The index file in the parse stage's out: egsynth.parsing.INDEX_NAME, not imported, which would make this stage
# depend on the parser's code (tests/test_stage_paths.py checks that the two agree).
PARSED_INDEX = "index.parquet"


@flow(name="tasks")
def tasks_stage(params: Params) -> None:
    paths = stage_paths()
    with tracked_stage("tasks", params) as run, atomic_path(paths["cases"], directory=True) as staging:
        sidecar_path = paths["raw_scenes"] / SIDECAR_NAME  # written for the embedded dataset only
        sidecar = pd.read_parquet(sidecar_path) if sidecar_path.is_file() else None
        cases, candidates = build_tasks(
            pd.read_parquet(paths["scenes_table"]),
            pd.read_parquet(paths["parsed"] / PARSED_INDEX),
            sidecar,
            staging,
            config=params.tasks,
            image_size=params.manifest.image_size,
            recorded_dir=paths["cases"],
        )
        retrieving = candidates[candidates["task"] == "retrieving"]
        chosen = retrieving[retrieving["chosen"]]
        run.log_metrics(
            {f"cases.{task}": n for task, n in cases["task"].value_counts().items()}
            | {
                "retrieving.chosen_energy": chosen["energy"].mean(),
                "retrieving.candidate_energy": retrieving["energy"].mean(),
                "retrieving.chosen_intersection": chosen["intersection"].mean(),
            }
        )


if __name__ == "__main__":
    run_stage(tasks_stage)
