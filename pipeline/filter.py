"""Stage `filter`: keep the outdoor scenes and split them train/test (paper Sec. 4, "Dataset").

Writes `data/interim/scenes.parquet` (one row per kept image) and the DVC metric
`reports/metrics/filter.json` (kept and removed per reason).
"""

from pathlib import Path

from prefect import flow

from egsynth.config import Params
from egsynth.data.filtering import filter_scenes
from egsynth.data.source import read_descriptor
from egsynth.io import atomic_path, write_json_atomic
from pipeline._stage import run_stage, tracked_stage

SCENES = Path("data/raw/scenes")
TABLE = Path("data/interim/scenes.parquet")
REPORT = Path("reports/metrics/filter.json")


@flow(name="filter")
def filter_stage(params: Params) -> None:
    with tracked_stage("filter", params) as run:
        _, tree = read_descriptor(SCENES)
        kept, report = filter_scenes(tree, params.filter)
        with atomic_path(TABLE) as staging:
            kept.to_parquet(staging, index=False)
        write_json_atomic(REPORT, report)
        run.log_metrics({"kept": report["kept"], **{f"removed_{k}": v for k, v in report["removed"].items()}})


if __name__ == "__main__":
    run_stage(filter_stage)
