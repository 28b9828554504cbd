"""How selective MSCA's attention is at initialization, for settings of the `model` params.

For each setting (a JSON object of `model` overrides, one per line on stdin or `--settings`), build
the `full` generator from the params file with those overrides and print one JSON line with the
finest scale's attention entropy and label match (`egsynth.evaluation.guidance`) on the first
`--cases` swap cases of the `tasks` stage. Initialization decides where a CPU training ends up:
under Adam at lr 2e-4 a weight moves about 0.1 in the default training, so attention that starts
uniform stays uniform. The README's "Deviations" table comes from it.

Needs the `tasks` stage's cases: run `make repro` (or `dvc repro tasks`) first.
Run: .venv/bin/python benchmarks/attention_init.py --settings '{}' '{"attention_labels": true}' \
  '{"attention_labels": true, "attention_label_init": 6, "attention_maps": [32, 32, 32, 32, 32]}'
"""

import argparse
import json
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from egsynth.config import load_params
from egsynth.data.encoding import one_hot
from egsynth.evaluation.attention import FINEST_SCALE
from egsynth.evaluation.cases import read_cases
from egsynth.evaluation.guidance import AttentionStatistics
from egsynth.evaluation.tasks import CaseDataset
from egsynth.models.generator import build_generator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--cases", type=int, default=40, help="swap cases measured (from the first)")
    parser.add_argument("--settings", nargs="+", required=True, help="JSON objects of `model` overrides")
    args = parser.parse_args()

    params = load_params(args.params)
    cases = read_cases(Path("data/eval"))
    swap = cases[cases["task"] == "swap"].head(args.cases)
    batch = next(iter(DataLoader(CaseDataset(swap, image_size=params.manifest.image_size), batch_size=len(swap))))
    c1, c2 = one_hot(batch["labels"]), one_hot(batch["exemplar_labels"])
    for setting in args.settings:
        overrides = json.loads(setting)
        model = params.model.model_validate(params.model.model_dump() | overrides)
        generator = build_generator("full", model).eval()
        with torch.no_grad():
            record = generator(c1, batch["exemplar"], c2).attention[FINEST_SCALE]
        statistics = AttentionStatistics()
        statistics.add(record, c2, c1)
        summary = {key: round(value, 3) for key, value in statistics.summary().items()}
        print(json.dumps({"model": overrides, "cases": len(swap)} | summary), flush=True)


if __name__ == "__main__":
    main()
