"""The `tasks` stage's cost against the retrieving pool size N (`tasks.retrieval_pool_size`).

Every member of the retrieving pool is ranked by the dense correspondence energy, one correspondence
per member and case, so the stage's time grows with N. This prints one JSON line per measurement:
- `chunk`: seconds per candidate of `rank_candidates` at each --chunks size, over --targets targets
  and N = max(--pool-sizes) candidates at `manifest.image_size`;
- `tasks`: wall and CPU seconds of `build_tasks` (what the stage runs, without Prefect and MLflow)
  on the params' `tasks` section with `retrieval_pool_size` set to each --pool-sizes value, its
  cases written to a temporary directory. On a shared machine the CPU seconds (this process's, all
  threads) are the cost; the wall seconds also count the time other processes held the cores.

Needs the pipeline's data up to `parse` (run `make repro` or `dvc repro parse` first); reads the
repository at --root and writes nothing there.
Run: .venv/bin/python benchmarks/retrieval.py [--root .] [--params params.yaml] [--pool-sizes 4 8 16]
[--chunks 4 8 16 32] [--targets 3]
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for `pipeline`

from pipeline._stage import stage_paths  # noqa: E402
from pipeline.tasks import PARSED_INDEX  # noqa: E402

from egsynth.config import load_params  # noqa: E402
from egsynth.data.datasets import read_image  # noqa: E402
from egsynth.data.embedded import SIDECAR_NAME  # noqa: E402
from egsynth.evaluation.correspondence import rank_candidates  # noqa: E402
from egsynth.evaluation.tasks import build_tasks  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path("."), help="a repository with the pipeline's data")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="relative to --root")
    parser.add_argument("--pool-sizes", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--chunks", type=int, nargs="+", default=[4, 8, 16, 32])
    parser.add_argument("--targets", type=int, default=3, help="targets of the chunk measurement")
    args = parser.parse_args()
    root = args.root.resolve()
    params = load_params(root / args.params)
    os.chdir(root)  # the tables name their files relative to the repository
    paths = stage_paths()
    scenes, parsed = pd.read_parquet(paths["scenes_table"]), pd.read_parquet(paths["parsed"] / PARSED_INDEX)
    sidecar_path = paths["raw_scenes"] / SIDECAR_NAME
    sidecar = pd.read_parquet(sidecar_path) if sidecar_path.is_file() else None
    size, config = params.manifest.image_size, params.tasks
    common = {"threads": os.environ.get("OMP_NUM_THREADS", "default"), "image_size": size}

    train = scenes.loc[scenes["split"] == "train", "image_path"].tolist()
    candidates = max(args.pool_sizes)
    images = [read_image(path, size) for path in train[: args.targets + candidates]]
    options = {"levels": config.correspondence_levels, "radius": config.correspondence_radius}
    for chunk in args.chunks:
        start, cpu = time.perf_counter(), time.process_time()
        for target in images[: args.targets]:
            rank_candidates(target, images[args.targets :], chunk=chunk, **options)
        count = args.targets * candidates
        seconds = {
            "s_per_candidate": (time.perf_counter() - start) / count,
            "cpu_s_per_candidate": (time.process_time() - cpu) / count,
        }
        print(json.dumps({"measure": "chunk", "chunk": chunk} | {k: round(v, 4) for k, v in seconds.items()} | common))

    for pool_size in args.pool_sizes:
        with tempfile.TemporaryDirectory(prefix="egsynth-tasks-") as out:
            start, cpu = time.perf_counter(), time.process_time()
            cases, _ = build_tasks(
                scenes,
                parsed,
                sidecar,
                Path(out),
                config=config.model_copy(update={"retrieval_pool_size": pool_size}),
                image_size=size,
                recorded_dir=Path(out),
            )
            seconds = {"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu}
        retrieving = int((cases["task"] == "retrieving").sum())
        row = {"measure": "tasks", "retrieval_pool_size": pool_size, "retrieving_cases": retrieving}
        print(json.dumps(row | {k: round(v, 1) for k, v in seconds.items()} | common), flush=True)


if __name__ == "__main__":
    main()
