"""The patch-pair manifest of the self-supervised scheme (Sec. 3.4, Eq. 9-11; appendices F and G).

Every crop of every training epoch is drawn here, once, from `manifest.seed`, and stored as rows;
the torch datasets (`egsynth.data.datasets`) only apply what a row says, so training is a pure
function of the manifest. All boxes are (y, x, size) squares in the global frame: the scene resized
to `image_size` x `image_size` (paper: 512).

Tables (one row per train scene and epoch; rows of an epoch in a seeded random order):

- `pretrain` (appendix G): two non-overlapping `patch_size` crops, `pretrain.epochs` epochs; phase 0.
- `patches` (Eq. 9, appendix F): two non-overlapping `patch_size` crops x_p (target) and x_q
  (exemplar), for `phase1_epochs + phase2_epochs` epochs: phase 1 trains on the first ones, and the
  `no_global` variant, which has no global rows and no enlarged patches, trains phase 2 on the rest.
- `enlarged` (appendix F): phase-2 cross rows with `enlarged_patch_size` crops that the dataset
  resizes to `patch_size`, each crop at a uniformly random position inside the image.
- `global` (Eq. 10): phase-2 self-reconstruction rows, target = exemplar = the whole global image.

"Random collision avoidance in horizontal direction or vertical direction" (appendix F, the first 20
epochs): per row an axis is drawn, and along it the two crops are placed apart, in random order and
at random offsets; across it each crop is placed independently. In the next 20 epochs appendix F
"randomly crop[s] 384x384 patches from the 512x512 global image": two such crops cannot lie apart
(2 * 384 > 512), so the enlarged rows draw each crop's corner uniformly over the positions that keep
it inside, the target's and the exemplar's independently. Flips (appendix F) are drawn for the
target and the exemplar independently; a global row has one flag for both.

Epoch e of a table draws from `numpy.random.default_rng([seed, table, e])`, so a table's epochs do
not depend on how many epochs follow (changing `phase2_epochs` keeps the phase-1 rows).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from egsynth.config import ManifestConfig, PretrainConfig, TrainConfig
from egsynth.data.source import DatasetError

TABLES = ("pretrain", "patches", "enlarged", "global")
"""Table names; each is written as `<name>.parquet` in the manifest directory."""

_STREAM = {name: index for index, name in enumerate(TABLES)}
"""The random stream of each table (the second word of its seed)."""

Sampler = Callable[..., tuple[np.ndarray, np.ndarray]]
"""(rng, count, *, image_size, crop_size) -> target and exemplar corners [count, 2]: `sample_pairs` or
`sample_random_crops`."""

COLUMNS = {
    "image_id": "int64",
    "epoch": "int32",  # training epoch, counted from 0 over phase 1 and phase 2 (pretraining: its own)
    "phase": "int8",  # 0: MSCA pretraining, 1: patch cross-reconstruction, 2: enlarged patches + global
    "task": "str",  # cross (Eq. 9) or global (Eq. 10)
    "target_y": "int32",  # x_p's box in the global frame
    "target_x": "int32",
    "target_size": "int32",
    "exemplar_y": "int32",  # x_q's box in the global frame
    "exemplar_x": "int32",
    "exemplar_size": "int32",
    "flip_target": "bool",  # horizontal flip of the target crop (image and labels)
    "flip_exemplar": "bool",
}

# ----------------------------------------------------------------------------------------------
# helpers


def train_image_ids(scenes: pd.DataFrame) -> np.ndarray:
    """The image ids of the train split, sorted: the order every table draws in."""
    ids = np.sort(scenes.loc[scenes["split"] == "train", "image_id"].to_numpy(dtype=np.int64))
    if len(ids) == 0:
        raise DatasetError("the scenes table has no train scenes: nothing to sample patches from")
    return ids


def _rng(seed: int, table: str, epoch: int) -> np.random.Generator:
    # SeedSequence takes non-negative words; a negative seed maps to its 64-bit two's complement.
    return np.random.default_rng([seed & (2**64 - 1), _STREAM[table], epoch])


def sample_pairs(
    rng: np.random.Generator, count: int, *, image_size: int, crop_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Top-left corners (y, x) of `count` target and exemplar crops with collision avoidance.

    Along a random axis per pair the crops are `crop_size` or more apart, so they never overlap;
    across it they are free. Two crops must fit side by side (2 * crop_size <= image_size).

    Returns:
        target [count, 2] and exemplar [count, 2] int64 corners, each crop inside the image.
    """
    if 2 * crop_size > image_size:
        raise ValueError(f"two {crop_size} px crops do not fit side by side in {image_size} px")
    span = image_size - crop_size  # corners along an axis: 0..span
    slack = span - crop_size  # room along the axis once the crops lie crop_size apart
    rows = np.arange(count)
    axis = rng.integers(0, 2, count)  # 0: vertical (y), 1: horizontal (x)
    low, high = np.sort(rng.integers(0, slack + 1, (count, 2)), axis=1).T  # [count] each
    high = high + crop_size
    target_first = rng.integers(0, 2, count).astype(bool)
    across = rng.integers(0, span + 1, (count, 2))  # [count, (target, exemplar)]
    target = np.empty((count, 2), dtype=np.int64)
    exemplar = np.empty((count, 2), dtype=np.int64)
    target[rows, axis] = np.where(target_first, low, high)
    exemplar[rows, axis] = np.where(target_first, high, low)
    target[rows, 1 - axis] = across[:, 0]
    exemplar[rows, 1 - axis] = across[:, 1]
    return target, exemplar


def sample_random_crops(
    rng: np.random.Generator, count: int, *, image_size: int, crop_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Top-left corners (y, x) of `count` target and exemplar crops, each uniform over 0..image_size - crop_size
    per axis and independent of the other (appendix F's random phase-2 crops).

    Returns:
        target [count, 2] and exemplar [count, 2] int64 corners, each crop inside the image.
    """
    corners = rng.integers(0, image_size - crop_size + 1, (2, count, 2))  # [(target, exemplar), count, (y, x)]
    return corners[0], corners[1]


def _table(columns: dict[str, np.ndarray | int | str]) -> pd.DataFrame:
    frame = pd.DataFrame(columns, columns=list(COLUMNS))
    return frame.astype(COLUMNS)


def _empty() -> pd.DataFrame:
    return _table({name: np.empty(0, dtype=dtype if dtype != "str" else object) for name, dtype in COLUMNS.items()})


def _cross_epoch(
    image_ids: np.ndarray,
    rng: np.random.Generator,
    *,
    epoch: int,
    phase: int,
    crop_size: int,
    manifest: ManifestConfig,
    sampler: Sampler,
) -> pd.DataFrame:
    count = len(image_ids)
    target, exemplar = sampler(rng, count, image_size=manifest.image_size, crop_size=crop_size)
    flips = rng.random((count, 2)) < 0.5  # drawn even without flips, so `flip` does not move the boxes
    flips &= manifest.flip
    order = rng.permutation(count)
    return _table(
        {
            "image_id": image_ids[order],
            "epoch": epoch,
            "phase": phase,
            "task": "cross",
            "target_y": target[order, 0],
            "target_x": target[order, 1],
            "target_size": crop_size,
            "exemplar_y": exemplar[order, 0],
            "exemplar_x": exemplar[order, 1],
            "exemplar_size": crop_size,
            "flip_target": flips[order, 0],
            "flip_exemplar": flips[order, 1],
        }
    )


def _global_epoch(
    image_ids: np.ndarray, rng: np.random.Generator, *, epoch: int, manifest: ManifestConfig
) -> pd.DataFrame:
    count = len(image_ids)
    flip = (rng.random(count) < 0.5) & manifest.flip
    order = rng.permutation(count)
    return _table(
        {
            "image_id": image_ids[order],
            "epoch": epoch,
            "phase": 2,
            "task": "global",
            "target_y": 0,
            "target_x": 0,
            "target_size": manifest.image_size,
            "exemplar_y": 0,
            "exemplar_x": 0,
            "exemplar_size": manifest.image_size,
            "flip_target": flip[order],
            "flip_exemplar": flip[order],
        }
    )


def _cross_table(
    scenes: pd.DataFrame,
    manifest: ManifestConfig,
    *,
    table: str,
    phases: dict[int, int],
    crop_size: int,
    sampler: Sampler = sample_pairs,
) -> pd.DataFrame:
    """Cross rows of `crop_size` pairs placed by `sampler` for each epoch -> phase of `phases`."""
    ids = train_image_ids(scenes)
    options = {"crop_size": crop_size, "manifest": manifest, "sampler": sampler}
    epochs = [
        _cross_epoch(ids, _rng(manifest.seed, table, epoch), epoch=epoch, phase=phase, **options)
        for epoch, phase in phases.items()
    ]
    return pd.concat(epochs, ignore_index=True) if epochs else _empty()


# ----------------------------------------------------------------------------------------------
# tables


def pretrain_rows(scenes: pd.DataFrame, manifest: ManifestConfig, *, epochs: int) -> pd.DataFrame:
    """Appendix G: non-overlapping `patch_size` pairs for `epochs` epochs of MSCA pretraining (phase 0)."""
    phases = dict.fromkeys(range(epochs), 0)
    return _cross_table(scenes, manifest, table="pretrain", phases=phases, crop_size=manifest.patch_size)


def patch_rows(
    scenes: pd.DataFrame, manifest: ManifestConfig, *, phase1_epochs: int, phase2_epochs: int
) -> pd.DataFrame:
    """Eq. 9: non-overlapping `patch_size` pairs for every training epoch (phase 1, then `no_global`'s phase 2)."""
    phases = {epoch: 1 if epoch < phase1_epochs else 2 for epoch in range(phase1_epochs + phase2_epochs)}
    return _cross_table(scenes, manifest, table="patches", phases=phases, crop_size=manifest.patch_size)


def enlarged_rows(
    scenes: pd.DataFrame, manifest: ManifestConfig, *, phase1_epochs: int, phase2_epochs: int
) -> pd.DataFrame:
    """Appendix F: phase-2 cross pairs of `enlarged_patch_size` crops at random positions (resized to
    `patch_size` when read)."""
    phases = dict.fromkeys(range(phase1_epochs, phase1_epochs + phase2_epochs), 2)
    size = manifest.enlarged_patch_size
    return _cross_table(scenes, manifest, table="enlarged", phases=phases, crop_size=size, sampler=sample_random_crops)


def global_rows(
    scenes: pd.DataFrame, manifest: ManifestConfig, *, phase1_epochs: int, phase2_epochs: int
) -> pd.DataFrame:
    """Eq. 10: phase-2 global self-reconstruction, target = exemplar = the whole `image_size` image."""
    ids = train_image_ids(scenes)
    epochs = [
        _global_epoch(ids, _rng(manifest.seed, "global", epoch), epoch=epoch, manifest=manifest)
        for epoch in range(phase1_epochs, phase1_epochs + phase2_epochs)
    ]
    return pd.concat(epochs, ignore_index=True) if epochs else _empty()


def build_manifests(
    scenes: pd.DataFrame, manifest: ManifestConfig, train: TrainConfig, pretrain: PretrainConfig
) -> dict[str, pd.DataFrame]:
    """Every table of the manifest, keyed by the names in `TABLES`."""
    epochs = {"phase1_epochs": train.phase1_epochs, "phase2_epochs": train.phase2_epochs}
    return {
        "pretrain": pretrain_rows(scenes, manifest, epochs=pretrain.epochs),
        "patches": patch_rows(scenes, manifest, **epochs),
        "enlarged": enlarged_rows(scenes, manifest, **epochs),
        "global": global_rows(scenes, manifest, **epochs),
    }


def phase_rows(
    tables: dict[str, pd.DataFrame], *, phase: int, use_global: bool = True, self_reconstruction: bool = False
) -> dict[str, pd.DataFrame]:
    """The rows of one training phase, by task: phase 1 {"cross"}; phase 2 {"cross", "global"}, or {"cross"}
    of non-overlapping patches when `use_global` is False (the `no_global` variant). Phase 2's cross and
    global rows have one row per scene and epoch each, so a step can take a batch of both (Eq. 11).

    `self_reconstruction`: every row's exemplar is its own target crop (`self_reconstruction_rows`), the
    training of the SPADE_VAE baseline, "based on a self-reconstruction loss" (Sec. 4, "Comparative
    Methods"), on the same crops the other variants cross-reconstruct."""
    if phase not in (1, 2):
        raise ValueError(f"phase must be 1 or 2, got {phase}")
    patches = tables["patches"]
    if phase == 1 or not use_global:
        rows = {"cross": patches[patches["phase"] == phase].reset_index(drop=True)}
    else:
        rows = {"cross": tables["enlarged"], "global": tables["global"]}
    if self_reconstruction:
        return {task: self_reconstruction_rows(task_rows) for task, task_rows in rows.items()}
    return rows


def self_reconstruction_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """Eq. 10 on any rows: each row's target crop is also its exemplar (x_p, c_p, x_p, c~_p).

    The warm-up epochs (`train.warmup_epochs`) train self-reconstruction on the cross rows' target
    patches instead of the global images, which cost four times as much a step at twice the side;
    `spade_vae` trains on nothing else (`phase_rows`).
    """
    rows = rows.copy()
    for field in ("y", "x", "size"):
        rows[f"exemplar_{field}"] = rows[f"target_{field}"]
    rows["flip_exemplar"] = rows["flip_target"]
    return rows


# ----------------------------------------------------------------------------------------------
# files


def write_manifests(tables: dict[str, pd.DataFrame], directory: Path) -> None:
    """Write each table as `<directory>/<name>.parquet` (same tables, same bytes)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in TABLES:
        tables[name].to_parquet(directory / f"{name}.parquet", index=False)


def read_manifests(directory: Path) -> dict[str, pd.DataFrame]:
    """The tables `write_manifests` wrote; a missing one is named."""
    missing = [name for name in TABLES if not (directory / f"{name}.parquet").is_file()]
    if missing:
        raise DatasetError(f"{directory}: manifest tables missing: {', '.join(missing)} (run the manifest stage)")
    return {name: pd.read_parquet(directory / f"{name}.parquet") for name in TABLES}
