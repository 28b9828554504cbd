"""Does a trained generator paint each region in its exemplar's color of that region, or only tint the whole image?

The swap matrix of the report shows it by eye; this prints it as numbers, over the pipeline's swap cases
(`data/eval`, the target's layout, another scene's exemplar, the truth rendered in the exemplar's style). For
each case and each class present in both the target's labels and the exemplar's parsed labels (at least
--min-pixels pixels in each), three mean colors in [-1, 1]: the output's over the target's pixels of the class
(o), the exemplar's over its pixels of the class (e) and the truth's over the target's (t); m is the truth's mean
of the class over all those cases (what a class-mean painter paints). Printed per variant:

- slope of (o - m) on (e - m): 1 when the output takes the exemplar's color of each class, 0 when it ignores
  the exemplar; the same slope of the truth (t - m) is the task's own (below 1: lighting and shading differ
  between the two scenes even in one style);
- the part of it that is not the exemplar's global tint: the slope of what the output's tint slope leaves,
  on the exemplar's class color minus its whole-image mean; the same of the truth, the task's own again;
- the same two slopes class by class (classes in at least --min-cases pairs);
- the label coverage that bounds any routing by class: the share of target pixels whose class is in the
  exemplar's labels (swap and duplicating), and how often the parsed exemplar labels equal the target's on
  duplicating, where both describe one scene.

Needs the pipeline's outputs: run `make repro` first. Reads them, writes nothing.
Run: .venv/bin/python benchmarks/region_transfer.py [--root .] [--variants full gap] [--min-pixels 20]
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for `pipeline`

from _built import add_pipeline_arguments, open_pipeline  # noqa: E402
from egsynth.data.encoding import one_hot  # noqa: E402
from egsynth.evaluation.cases import SWAP  # noqa: E402
from egsynth.evaluation.showcase import CLASS_NAMES  # noqa: E402
from egsynth.evaluation.tasks import CaseDataset  # noqa: E402
from egsynth.models.generator import load_generator  # noqa: E402


def slope(response: np.ndarray, predictor: np.ndarray) -> float:
    """Least-squares slope of `response` on `predictor`, all color channels pooled."""
    x, y = predictor.ravel() - predictor.mean(), response.ravel() - response.mean()
    return float(np.dot(x, y) / np.dot(x, x))


@torch.no_grad()
def class_colors(generator, cases: pd.DataFrame, image_size: int, min_pixels: int) -> pd.DataFrame:
    """One row per (case, class in both label maps): the mean colors o, e, t and the exemplar's global mean g."""
    rows = []
    for batch in DataLoader(CaseDataset(cases, image_size=image_size), batch_size=16):
        labels, exemplar_labels = batch["labels"], batch["exemplar_labels"]
        output = generator(one_hot(labels), batch["exemplar"], one_hot(exemplar_labels)).image.clamp(-1, 1)
        for i in range(len(output)):
            target, source = labels[i].flatten(), exemplar_labels[i].flatten()
            painted, exemplar, truth = (
                image.flatten(1) for image in (output[i], batch["exemplar"][i], batch["truth"][i])
            )
            for index in sorted(set(target.tolist()) & set(source.tolist())):
                inside, inside_exemplar = target == index, source == index
                if min(int(inside.sum()), int(inside_exemplar.sum())) < min_pixels:
                    continue
                rows.append(
                    {
                        "case": int(batch["index"][i]),
                        "class": CLASS_NAMES[index],
                        "o": painted[:, inside].mean(1).numpy(),
                        "e": exemplar[:, inside_exemplar].mean(1).numpy(),
                        "t": truth[:, inside].mean(1).numpy(),
                        "g": exemplar.mean(1).numpy(),
                    }
                )
    return pd.DataFrame(rows)


def transfer_slopes(colors: pd.DataFrame) -> dict[str, float]:
    """The module's slopes over `colors`' rows, m each class's mean truth color over those rows."""
    painted, exemplar, truth, tint = (np.stack(colors[key]) for key in ("o", "e", "t", "g"))
    truth_means = {name: np.stack(group).mean(0) for name, group in colors.groupby("class")["t"]}
    class_mean = np.stack([truth_means[name] for name in colors["class"]])
    tint = tint - tint.mean(0)

    def beyond_tint(colors: np.ndarray) -> float:
        tint_slope = slope(colors - class_mean, tint)
        return slope(colors - class_mean - tint_slope * tint, exemplar - class_mean - tint)

    return {
        "output": slope(painted - class_mean, exemplar - class_mean),
        "truth": slope(truth - class_mean, exemplar - class_mean),
        "output beyond tint": beyond_tint(painted),
        "truth beyond tint": beyond_tint(truth),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_pipeline_arguments(parser)
    parser.add_argument("--min-pixels", type=int, default=20, help="pixels of a class in each label map")
    parser.add_argument("--min-cases", type=int, default=12, help="pairs a class needs for its own line")
    args = parser.parse_args()
    paths, cases, image_size = open_pipeline(args.root)
    swap = cases[cases["task"] == SWAP].reset_index(drop=True)
    for task in ("duplicating", SWAP):
        rows = cases[cases["task"] == task].reset_index(drop=True)
        covered, agree = [], []
        for item in CaseDataset(rows, image_size=image_size):
            target, source = item["labels"].numpy(), item["exemplar_labels"].numpy()
            covered.append(np.isin(target, np.unique(source)).mean())
            agree.append((target == source).mean())
        line = f"{task}: {np.mean(covered):.3f} of target pixels have their class in the exemplar's labels"
        print(line + (f"; parsed exemplar labels equal the target's at {np.mean(agree):.3f}" if task != SWAP else ""))
    for variant in args.variants:
        generator = load_generator(paths["variant_models"] / variant / "generator.pt", map_location="cpu").eval()
        colors = class_colors(generator, swap, image_size, args.min_pixels)
        slopes = transfer_slopes(colors)
        print(f"\n{variant}: {len(colors)} (case, class) pairs over {colors['case'].nunique()} swap cases")
        print("  " + ", ".join(f"slope {name} {value:.2f}" for name, value in slopes.items()))
        for name, group in colors.groupby("class"):
            if len(group) >= args.min_cases:
                per_class = transfer_slopes(group)
                output, truth = per_class["output"], per_class["truth"]
                print(f"  {name:>14} {len(group):4d} pairs: output {output:5.2f}, truth {truth:5.2f}")


if __name__ == "__main__":
    main()
