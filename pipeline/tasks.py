"""Stage `tasks`: the evaluation cases of Sec. 4, built once for every variant (`egsynth.evaluation.tasks`).

Duplicating, mirroring, retrieving (label-histogram pool, dense SIFT correspondence, color-corrected
ground truth) and, on the embedded data, the exact style swap. Writes `data/eval/` (cases.parquet,
candidates.parquet and each case's PNGs) at the generators' global size `manifest.image_size`.
"""

from pathlib import Path

import pandas as pd
from prefect import flow

from egsynth.config import Params
from egsynth.data.embedded import SIDECAR_NAME
from egsynth.evaluation.tasks import build_tasks
from egsynth.io import atomic_path
from pipeline._stage import run_stage, tracked_stage

SCENES = Path("data/interim/scenes.parquet")
PARSED = Path("data/interim/parsed/index.parquet")
SIDECAR = Path("data/raw/scenes") / SIDECAR_NAME
OUT = Path("data/eval")


@flow(name="tasks")
def tasks_stage(params: Params) -> None:
    with tracked_stage("tasks", params) as run, atomic_path(OUT, directory=True) as staging:
        sidecar = pd.read_parquet(SIDECAR) if SIDECAR.is_file() else None
        cases, candidates = build_tasks(
            pd.read_parquet(SCENES),
            pd.read_parquet(PARSED),
            sidecar,
            staging,
            config=params.tasks,
            image_size=params.manifest.image_size,
            recorded_dir=OUT,
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
