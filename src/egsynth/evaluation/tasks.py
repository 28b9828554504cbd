"""The evaluation tasks of Sec. 4, built once as data for every variant (stage `tasks`).

Each selected test scene gives one case per task; a case is a target label map c1 (ground truth),
an exemplar x2 with its parsed labels c~2, and the ground truth the output is compared with:

- duplicating: the exemplar is the ground truth itself;
- mirroring: the exemplar is the ground truth mirrored left-right (its parsed labels too);
- retrieving: the exemplar is a training image chosen in two steps, as the paper does: a pool of the
  `retrieval_pool_size` images of greatest label-histogram intersection with the target, every one
  ranked by a dense SIFT correspondence energy (the paper's SIFT Flow), the lowest chosen; the ground
  truth is then color-corrected toward the chosen exemplar ([47]). `retrieval_pool:
  user_study_percentile` is the user study's setting instead (footnote 2): `num_candidates` drawn with
  the seed from the top `pool_percentile` percent, ranked the same way;
- swap (embedded data only): the exemplar is another test scene and the ground truth is
  `render(target layout, exemplar style)`, exact, so no correction is needed.

Files under the output directory: `cases.parquet` (one row per case, paths relative to the repo),
`candidates.parquet` (every candidate of the retrieving and swap cases with its histogram
intersection and energy, the chosen one marked, so a choice can be audited; a retrieving case's
candidates in pool order, intersection descending for `top_n`), and per case the PNGs
`<task>/<image id>/{labels,exemplar,exemplar_labels,truth}.png` (+ `truth_uncorrected.png` for
retrieving). Label PNGs use the stuffthingmaps encoding (COCO-stuff id - 1, 255 unlabeled).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import Dataset
from tqdm import tqdm

from egsynth.config import TasksConfig
from egsynth.data import procedural
from egsynth.data.datasets import Scene, SceneLoader, read_image
from egsynth.data.encoding import to_image_tensor
from egsynth.data.labels import label_values, read_label_indices
from egsynth.data.source import DatasetError
from egsynth.evaluation.cases import CANDIDATES_NAME, CASES_NAME, TASKS
from egsynth.evaluation.color import color_transfer
from egsynth.evaluation.correspondence import rank_candidates
from egsynth.evaluation.retrieval import (
    choose_candidates,
    histogram_intersection,
    label_histogram,
    percentile_pool,
    top_n_pool,
)

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------------------------
# helpers


def select_test_scenes(scenes: pd.DataFrame, *, max_scenes: int | None, seed: int) -> pd.DataFrame:
    """The test split, or a seeded subset of `max_scenes` of it, in image-id order."""
    test = scenes[scenes["split"] == "test"].sort_values("image_id")
    if len(test) < 2:
        raise DatasetError(f"the scenes table has {len(test)} test scenes; the tasks need at least 2")
    if max_scenes is not None and max_scenes < len(test):
        chosen = np.random.default_rng([seed, 0]).choice(len(test), size=max_scenes, replace=False)
        test = test.iloc[np.sort(chosen)]
    return test.reset_index(drop=True)


def swap_partners(image_ids: np.ndarray, *, seed: int) -> dict[int, int]:
    """Each scene's exemplar scene for the swap task: a seeded cycle, so no scene is its own exemplar."""
    order = np.random.default_rng([seed, 1]).permutation(np.asarray(image_ids))
    return {int(a): int(b) for a, b in zip(order, np.roll(order, -1), strict=True)}


def swap_truth(target: pd.Series, exemplar: pd.Series, *, height: int, width: int) -> np.ndarray:
    """The exact ground truth of "target's layout in exemplar's style": uint8 [height, width, 3].

    `target` and `exemplar` are rows of the embedded dataset's sidecar (`procedural.parquet`); the
    layout and textures come from the target's seeds, the style vector from the exemplar.
    """
    layout = procedural.sample_layout(int(target["layout_seed"]), target["kind"])
    style = procedural.Style(vector=np.asarray(exemplar["style"], dtype=np.float32))
    return procedural.render(layout, style, int(target["texture_seed"]), height, width)


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """The same resize `read_image` applies to a file (Pillow bilinear), for rendered images."""
    if image.shape[:2] == (size, size):
        return image
    return np.array(Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR))


def retrieval_candidates(
    target_hist: np.ndarray,  # the target's label histogram [C]
    pool_hists: np.ndarray,  # the training images' [N, C]
    *,
    exclude: np.ndarray,  # bool [N]: never a candidate (the target itself)
    config: TasksConfig,
    rng: np.random.Generator,  # draws the user study's candidates
) -> np.ndarray:
    """Indices into the pool of the images the correspondence energy ranks, by `config.retrieval_pool`."""
    if config.retrieval_pool == "top_n":
        return top_n_pool(target_hist, pool_hists, size=config.retrieval_pool_size, exclude=exclude)
    in_pool = percentile_pool(target_hist, pool_hists, percentile=config.pool_percentile, exclude=exclude)
    return choose_candidates(in_pool, count=config.num_candidates, rng=rng)


@dataclass(frozen=True)
class Case:
    task: str
    image_id: int  # the target scene
    exemplar_id: int  # the scene the exemplar comes from
    labels: np.ndarray  # uint8 [S, S] class indices of c1
    exemplar: np.ndarray  # uint8 [S, S, 3]
    exemplar_labels: np.ndarray  # uint8 [S, S] class indices of c~2
    truth: np.ndarray  # uint8 [S, S, 3]
    truth_uncorrected: np.ndarray | None = None  # retrieving: the ground truth before color correction


def write_case(case: Case, root: Path, relative_to: Path) -> dict:
    """Write a case's PNGs under `root` and return its row of `cases.parquet` (paths under `relative_to`)."""
    folder = root / case.task / f"{case.image_id:012d}"
    folder.mkdir(parents=True, exist_ok=True)
    images = {
        "labels": label_values(case.labels),
        "exemplar": case.exemplar,
        "exemplar_labels": label_values(case.exemplar_labels),
        "truth": case.truth,
    }
    if case.truth_uncorrected is not None:
        images["truth_uncorrected"] = case.truth_uncorrected
    row = {"case_id": f"{case.task}/{case.image_id:012d}", "task": case.task}
    row |= {"image_id": case.image_id, "exemplar_id": case.exemplar_id, "truth_uncorrected_path": None}
    for name, array in images.items():
        Image.fromarray(np.ascontiguousarray(array)).save(folder / f"{name}.png")
        row[f"{name}_path"] = (relative_to / case.task / folder.name / f"{name}.png").as_posix()
    return row


# ----------------------------------------------------------------------------------------------
# the tasks


def mirrored(scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    return scene.image[:, ::-1].copy(), scene.parsed[:, ::-1].copy()


def build_tasks(
    scenes: pd.DataFrame,  # the filter stage's table (split train/test)
    parsed: pd.DataFrame | None,  # the parse stage's index; None: ground-truth labels for exemplars (oracle)
    sidecar: pd.DataFrame | None,  # the embedded dataset's procedural.parquet; None: no swap task
    out: Path,  # directory to fill (the stage's staging directory)
    *,
    config: TasksConfig,
    image_size: int,  # the global size the generators synthesize (manifest.image_size)
    recorded_dir: Path,  # the path the rows name instead of `out` (the final output directory)
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Write every case of every task; return (cases, candidates) as also written to parquet."""
    test = select_test_scenes(scenes, max_scenes=config.max_scenes, seed=config.seed)
    pool = scenes[scenes["split"] == "train"].sort_values("image_id").reset_index(drop=True)
    if pool.empty:
        raise DatasetError("the scenes table has no train split to retrieve exemplars from")
    loader = SceneLoader(scenes, parsed, image_size=image_size)
    tasks = TASKS if sidecar is not None else TASKS[:3]
    log.info("tasks %s on %d test scenes, retrieving from %d training images", tasks, len(test), len(pool))

    pool_ids = pool["image_id"].to_numpy()
    pool_hists = np.stack([label_histogram(read_label_indices(p, image_size)) for p in pool["label_path"]])  # [N, C]
    rng = np.random.default_rng([config.seed, 2])
    partners = swap_partners(test["image_id"].to_numpy(), seed=config.seed)
    sidecar = sidecar.set_index("image_id") if sidecar is not None else None
    sizes = scenes.set_index("image_id")[["height", "width"]]

    rows, candidates = [], []
    for image_id in tqdm(test["image_id"].map(int), total=len(test), desc="tasks", unit="scene"):
        scene = loader(image_id)
        cases = [
            Case("duplicating", image_id, image_id, scene.labels, scene.image, scene.parsed, scene.image),
            Case("mirroring", image_id, image_id, scene.labels, *mirrored(scene), scene.image),
        ]

        target_hist = label_histogram(scene.labels)
        intersections = histogram_intersection(target_hist, pool_hists)  # [N]
        drawn = retrieval_candidates(target_hist, pool_hists, exclude=pool_ids == image_id, config=config, rng=rng)
        drawn_scenes = [loader(int(pool_ids[i])) for i in drawn]
        ranked = rank_candidates(
            scene.image,
            [s.image for s in drawn_scenes],
            levels=config.correspondence_levels,
            radius=config.correspondence_radius,
        )
        best = int(np.argmin([c.energy for c in ranked]))
        for rank, (i, correspondence) in enumerate(zip(drawn, ranked, strict=True)):
            candidates.append(
                {
                    "task": "retrieving",
                    "image_id": image_id,
                    "candidate_id": int(pool_ids[i]),
                    "intersection": float(intersections[i]),
                    "energy": correspondence.energy,
                    "chosen": rank == best,
                }
            )
        exemplar = drawn_scenes[best]
        cases.append(
            Case(
                "retrieving",
                image_id,
                int(pool_ids[drawn[best]]),
                scene.labels,
                exemplar.image,
                exemplar.parsed,
                truth=color_transfer(scene.image, exemplar.image),
                truth_uncorrected=scene.image,
            )
        )

        if sidecar is not None:
            partner = partners[image_id]
            height, width = (int(v) for v in sizes.loc[image_id])
            truth = swap_truth(sidecar.loc[image_id], sidecar.loc[partner], height=height, width=width)
            other = loader(partner)
            cases.append(
                Case(
                    "swap", image_id, partner, scene.labels, other.image, other.parsed, resize_image(truth, image_size)
                )
            )
            candidates.append(
                {
                    "task": "swap",
                    "image_id": image_id,
                    "candidate_id": partner,
                    "intersection": float(histogram_intersection(target_hist, label_histogram(other.labels)[None])[0]),
                    "energy": float("nan"),
                    "chosen": True,
                }
            )
        rows += [write_case(case, out, recorded_dir) for case in cases]

    cases_table = pd.DataFrame(rows).sort_values(["task", "image_id"], kind="stable").reset_index(drop=True)
    candidates_table = pd.DataFrame(candidates)
    cases_table.to_parquet(out / CASES_NAME, index=False)
    candidates_table.to_parquet(out / CANDIDATES_NAME, index=False)
    return cases_table, candidates_table


# ----------------------------------------------------------------------------------------------
# reading cases back


class CaseDataset(Dataset):
    """Cases as tensors: "labels" and "exemplar_labels" uint8 class indices [S, S] (`one_hot` them on the
    device), "exemplar" and "truth" [3, S, S] in [-1, 1], "index" the row in the cases table."""

    def __init__(self, cases: pd.DataFrame, *, image_size: int):
        self.cases = cases.reset_index(drop=True)
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.cases)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | int]:
        row = self.cases.iloc[index]
        size = self.image_size
        return {
            "labels": torch.from_numpy(read_label_indices(row["labels_path"], size)),
            "exemplar": to_image_tensor(read_image(row["exemplar_path"], size)),
            "exemplar_labels": torch.from_numpy(read_label_indices(row["exemplar_labels_path"], size)),
            "truth": to_image_tensor(read_image(row["truth_path"], size)),
            "index": index,
        }
