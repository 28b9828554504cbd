"""Stage `manifest`: the patch-pair manifest of the self-supervised scheme (Sec. 3.4, appendices F, G).

Writes `data/processed/{pretrain,patches,enlarged,global}.parquet` (egsynth.data.patches), every
crop and flip of MSCA pretraining and of both training phases, drawn from `manifest.seed`.
"""

import pandas as pd
from prefect import flow

from egsynth.config import Params
from egsynth.data.patches import build_manifests, write_manifests
from egsynth.io import atomic_path
from pipeline._stage import run_stage, stage_paths, tracked_stage


@flow(name="manifest")
def manifest_stage(params: Params) -> None:
    paths = stage_paths()
    with tracked_stage("manifest", params) as run:
        scenes = pd.read_parquet(paths["scenes_table"])
        tables = build_manifests(scenes, params.manifest, params.train, params.pretrain)
        with atomic_path(paths["manifests"], directory=True) as staging:
            write_manifests(tables, staging)
        run.log_metrics({f"{name}_rows": len(table) for name, table in tables.items()})


if __name__ == "__main__":
    run_stage(manifest_stage)
