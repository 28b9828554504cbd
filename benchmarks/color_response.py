"""How does a trained generator's output color respond to its exemplar's color, channel by channel?

On the pipeline's first --cases duplicating cases (exemplar = the target scene), each color channel of every
exemplar is shifted by ±--shift (clamped to [-1, 1]) and the generator run again; printed per variant is the
3x3 matrix of the mean output change over the mean input change (row: the exemplar channel shifted, R, G, B;
column: the output channel that moved). A generator that copies its exemplar's colors has the identity there;
one that reads only the exemplar's brightness has every row alike, led by G (the channel luminance weighs most).

Needs the pipeline's outputs: run `make repro` first. Reads them, writes nothing.
Run: .venv/bin/python benchmarks/color_response.py [--root .] [--variants full gap] [--cases 32] [--shift 0.1]
"""

import argparse
import sys
from pathlib import Path

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for `pipeline`

from _built import add_pipeline_arguments, open_pipeline  # noqa: E402
from egsynth.data.encoding import one_hot  # noqa: E402
from egsynth.evaluation.tasks import CaseDataset  # noqa: E402
from egsynth.models.generator import load_generator  # noqa: E402

CHANNELS = "RGB"


@torch.no_grad()
def color_response(generator, batch: dict, shift: float) -> torch.Tensor:
    """[3, 3]: row i, the mean output change per unit of mean exemplar change when channel i is shifted."""
    target, exemplar, exemplar_labels = one_hot(batch["labels"]), batch["exemplar"], one_hot(batch["exemplar_labels"])
    rows = []
    for channel in range(3):
        offset = torch.zeros(1, 3, 1, 1)
        offset[0, channel] = shift
        raised, lowered = (exemplar + offset).clamp(-1, 1), (exemplar - offset).clamp(-1, 1)
        moved = generator(target, raised, exemplar_labels).image - generator(target, lowered, exemplar_labels).image
        rows.append(moved.mean((0, 2, 3)) / (raised - lowered)[:, channel].mean())
    return torch.stack(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_pipeline_arguments(parser)
    parser.add_argument("--cases", type=int, default=32, help="duplicating cases, the first of the task")
    parser.add_argument("--shift", type=float, default=0.1, help="the shift of one channel, in [-1, 1] units")
    args = parser.parse_args()
    paths, cases, image_size = open_pipeline(args.root)
    duplicating = cases[cases["task"] == "duplicating"].reset_index(drop=True).iloc[: args.cases]
    batch = next(iter(DataLoader(CaseDataset(duplicating, image_size=image_size), batch_size=len(duplicating))))
    for variant in args.variants:
        generator = load_generator(paths["variant_models"] / variant / "generator.pt", map_location="cpu").eval()
        response = color_response(generator, batch, args.shift)
        print(f"{variant}: output change per exemplar change, {len(duplicating)} duplicating cases")
        print("  exemplar \\ output " + " ".join(f"{name:>6}" for name in CHANNELS))
        for name, row in zip(CHANNELS, response.tolist(), strict=True):
            print(f"  {name:>17} " + " ".join(f"{value:6.2f}" for value in row))


if __name__ == "__main__":
    main()
