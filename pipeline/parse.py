"""Stage `parse`: every exemplar image, train and test, parsed into a label map c~ (paper Sec. 4).

Writes `data/interim/parsed/<split>/<file stem>.png` (stuffthingmaps encoding: id - 1, 255
unlabeled; for the oracle, the ground truth's values) and `data/interim/parsed/index.parquet`
(image_id, split, parsed_path, parser label). Shards of `parse.shard_size` images are one Prefect
task each, run on threads of this process, or on the Dask cluster at `parse.dask_address`
(prefect-dask, the `dask` extra; the workers must share this filesystem).
"""

from pathlib import Path

import pandas as pd
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner
from tqdm import tqdm

from egsynth.config import Params, ParamsError, ParseConfig
from egsynth.io import atomic_path
from egsynth.parsing import INDEX_NAME, ParserError, load_parser, parse_shard, plan_shards
from pipeline._stage import run_stage, stage_paths, tracked_stage

LOCAL_WORKERS = 2  # shards parsed at once without Dask; each already uses every core through torch


@task(cache_policy=NO_CACHE)
def parse_shard_task(parser_file: Path, shard: pd.DataFrame, staging: Path, out: Path, batch_size: int) -> pd.DataFrame:
    return parse_shard(load_parser(parser_file), shard, staging, batch_size=batch_size, recorded_dir=out)


@flow(name="parse-shards")
def parse_shards(
    parser_file: Path, shards: list[pd.DataFrame], staging: Path, out: Path, batch_size: int
) -> pd.DataFrame:
    """Parse every shard into `staging`, the index rows naming their PNGs under `out`, where `staging` goes."""
    futures = [parse_shard_task.submit(parser_file, shard, staging, out, batch_size) for shard in shards]
    with tqdm(total=sum(map(len, shards)), desc="parse", unit="image") as progress:
        for future in as_completed(futures):
            progress.update(len(future.result()))
    return pd.concat([future.result() for future in futures], ignore_index=True)


def task_runner(config: ParseConfig):
    if config.dask_address is None:
        return ThreadPoolTaskRunner(max_workers=LOCAL_WORKERS)
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError:
        raise ParamsError("parse.dask_address is set but prefect-dask is not installed (the `dask` extra)") from None
    return DaskTaskRunner(address=config.dask_address)


@flow(name="parse")
def parse_stage(params: Params) -> None:
    paths = stage_paths()
    out = paths["parsed"]
    with tracked_stage("parse", params) as run, atomic_path(out, directory=True) as staging:
        parser = load_parser(paths["parser"])
        if parser.source != params.parser.source:
            raise ParserError(
                f"{paths['parser']}: holds a '{parser.source}' parser, params say '{params.parser.source}'"
            )
        scenes = pd.read_parquet(paths["scenes_table"])
        shards = plan_shards(scenes, params.parse.shard_size)
        index = parse_shards.with_options(task_runner=task_runner(params.parse))(
            paths["parser"], shards, staging, out, params.parse.batch_size
        )
        assert len(index) == len(scenes) and index["image_id"].is_unique, "every scene parsed exactly once"
        index.to_parquet(staging / INDEX_NAME, index=False)
        run.log_metrics({"images": len(index), "shards": len(shards)})


if __name__ == "__main__":
    run_stage(parse_stage)
