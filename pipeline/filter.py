"""Stage `filter`: keep the outdoor scenes and split them train/test (paper Sec. 4, "Dataset").

Writes `data/interim/scenes.parquet` (one row per kept image) and the DVC metric
`reports/metrics/filter.json` (kept and removed per reason).
"""

from prefect import flow

from egsynth.config import Params
from egsynth.data.filtering import filter_scenes
from egsynth.data.source import read_descriptor
from egsynth.io import atomic_path, write_json_atomic
from pipeline._stage import run_stage, stage_paths, tracked_stage


@flow(name="filter")
def filter_stage(params: Params) -> None:
    paths = stage_paths()
    with tracked_stage("filter", params) as run:
        _, tree = read_descriptor(paths["raw_scenes"])
        kept, report = filter_scenes(tree, params.filter)
        with atomic_path(paths["scenes_table"]) as staging:
            kept.to_parquet(staging, index=False)
        write_json_atomic(paths["filter_metrics"], report)
        run.log_metrics({"kept": report["kept"], **{f"removed_{k}": v for k, v in report["removed"].items()}})


if __name__ == "__main__":
    run_stage(filter_stage)
