"""Stage `pretrain`: MSCA and extractor pretraining with the auxiliary feature decoder (appendix G).

Trains W_x, W_c and the MSCA modules of the `full` architecture on the non-overlapping patch pairs
of `data/processed/pretrain.parquet`; `train@VARIANT` starts from these weights. Writes
`models/pretrain.pt` and the loss curve `plots/pretrain.csv`.
"""

import pandas as pd
import torch
from prefect import flow
from torch.utils.data import DataLoader

from egsynth.config import Params
from egsynth.data.datasets import PairDataset
from egsynth.data.patches import read_manifests
from egsynth.devices import default_device
from egsynth.io import atomic_path
from egsynth.models.generator import build_generator
from egsynth.training.pretrain import build_decoder, pretrain, save_pretrained
from pipeline._stage import run_stage, stage_paths, tracked_stage

# The index file in the parse stage's out: egsynth.parsing.INDEX_NAME, not imported, which would make this stage
# depend on the parser's code (tests/test_stage_paths.py checks that the two agree).
PARSED_INDEX = "index.parquet"


@flow(name="pretrain")
def pretrain_stage(params: Params) -> None:
    paths = stage_paths()
    with tracked_stage("pretrain", params) as run:
        torch.manual_seed(params.pretrain.seed)
        rows = read_manifests(paths["manifests"])["pretrain"]
        scenes, parsed = pd.read_parquet(paths["scenes_table"]), pd.read_parquet(paths["parsed"] / PARSED_INDEX)
        size = params.manifest
        dataset = PairDataset(
            rows, scenes, parsed, image_size=size.image_size, patch_size=size.patch_size, cache_size=len(scenes)
        )

        def epoch_batches(epoch: int):
            indices = (rows["epoch"] == epoch).to_numpy().nonzero()[0].tolist()
            subset = torch.utils.data.Subset(dataset, indices)
            return DataLoader(subset, batch_size=params.pretrain.batch_size, shuffle=False)

        generator = build_generator("full", params.model)
        decoder = build_decoder(generator)
        history = pretrain(
            generator=generator,
            decoder=decoder,
            batches=epoch_batches,
            epochs=params.pretrain.epochs,
            lr=params.pretrain.lr,
            device=default_device(),
            on_step=lambda step, loss: run.log_metrics({"pretrain_l1": loss}, step=step),
        )
        save_pretrained(generator, decoder, paths["pretrained"])
        with atomic_path(paths["pretrain_curve"]) as staging:
            pd.DataFrame({"step": range(1, len(history) + 1), "l1": history}).to_csv(staging, index=False)


if __name__ == "__main__":
    run_stage(pretrain_stage)
