"""Parsing a whole scenes table in shards: what each fan-out task of the `parse` stage does.

Every scene is parsed into `<out>/<split>/<file stem>.png`, in the stuffthingmaps encoding
(id - 1, 255 unlabeled), and described by one index row (image_id, split, parsed_path, parser).
For the oracle the PNGs hold the ground-truth label maps (same values, re-encoded), so the output
directory is self-contained either way.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pandas as pd

from egsynth.parsing.data import write_label_map
from egsynth.parsing.parser import Parser

INDEX_COLUMNS = ("image_id", "split", "parsed_path", "parser")
INDEX_NAME = "index.parquet"


def parsed_name(split: str, file_name: str) -> PurePosixPath:
    """Path of a scene's parsed label map inside the output directory: `<split>/<file stem>.png`."""
    return PurePosixPath(split) / f"{PurePosixPath(file_name).stem}.png"


def plan_shards(scenes: pd.DataFrame, shard_size: int) -> list[pd.DataFrame]:
    """Consecutive shards of at most `shard_size` rows; refuses two scenes that would share an output."""
    names = [parsed_name(split, name) for split, name in zip(scenes["split"], scenes["file_name"], strict=True)]
    if len(set(names)) != len(names):
        duplicate = pd.Series(names)[pd.Series(names).duplicated()].iloc[0]
        raise ValueError(f"two scenes would both be parsed into {duplicate} (same split and file stem)")
    return [scenes.iloc[start : start + shard_size] for start in range(0, len(scenes), shard_size)]


def parse_shard(
    parser: Parser,
    shard: pd.DataFrame,  # rows of a scenes table: image_id, split, file_name, image_path, label_path
    out_dir: Path,  # PNGs are written under it
    *,
    batch_size: int = 32,
    recorded_dir: Path | None = None,  # the directory `parsed_path` names (default out_dir), e.g. the
    # final location of a staging directory
) -> pd.DataFrame:
    """Parse and write every scene of the shard; return its index rows (INDEX_COLUMNS)."""
    recorded_dir = out_dir if recorded_dir is None else recorded_dir
    rows = []
    for start in range(0, len(shard), batch_size):
        batch = shard.iloc[start : start + batch_size]
        for scene, labels in zip(
            batch.itertuples(index=False), parser.parse(batch, batch_size=batch_size), strict=True
        ):
            name = parsed_name(scene.split, scene.file_name)
            write_label_map(out_dir / name, labels)
            rows.append(
                {
                    "image_id": scene.image_id,
                    "split": scene.split,
                    "parsed_path": (Path(recorded_dir) / name).as_posix(),
                    "parser": parser.label,
                }
            )
    return pd.DataFrame(rows, columns=list(INDEX_COLUMNS))
