"""Stage `train@VARIANT`: GAN training of one generator variant (Eq. 11-12, appendix F).

Phase 1 trains on the patch cross-reconstruction rows only; phase 2 on enlarged patches plus global
self-reconstruction (`no_global`: more phase-1 rows instead). `spade_vae`, the paper's SPADE_VAE
baseline, trains on the same rows with each exemplar replaced by its own target (self-reconstruction
only, as SPADE trains its VAE). MSCA variants start from the `pretrain` stage's weights.

Writes `models/VARIANT/generator.pt`, the loss curves `plots/train/VARIANT.csv`, the finest MSCA's
attention statistics at each checkpoint `plots/attention/VARIANT.csv` (step, entropy, label_match;
no rows without MSCA, and only the checkpoints of this run after a resume) and a resumable checkpoint under
`models/VARIANT/checkpoints/` (kept across runs), named by the params and the md5s of every dep in
dvc.yaml, code, data and `models/pretrain.pt` alike (see `egsynth.training.checkpoint`): a run
resumes only the checkpoint of the same params and deps, and deletes the others. Multi-GPU:
`torchrun --nproc_per_node N -m pipeline.train VARIANT`.
"""

import sys
import tempfile
from pathlib import Path

import pandas as pd
import torch
from prefect import flow
from torch.utils.data import DataLoader

from egsynth.config import Params
from egsynth.data.datasets import PairDataset
from egsynth.data.encoding import to_image, to_label_indices
from egsynth.data.patches import phase_rows, read_manifests, self_reconstruction_rows
from egsynth.evaluation import figures
from egsynth.evaluation.guidance import ATTENTION_STATISTICS, attention_probe
from egsynth.io import atomic_path
from egsynth.models.generator import Generator, save_generator
from egsynth.models.variants import VARIANTS
from egsynth.training import EpochData, init_distributed, train_gan
from egsynth.training.assembly import build_training
from egsynth.training.checkpoint import checkpoint_name, discard_other_checkpoints
from egsynth.training.distributed import gather
from pipeline._stage import run_stage, stage_paths, tracked_stage

# The index file in the parse stage's out: egsynth.parsing.INDEX_NAME, not imported, which would make this stage
# depend on the parser's code (tests/test_stage_paths.py checks that the two agree).
PARSED_INDEX = "index.parquet"


@torch.no_grad()
def sample_grid(generator: Generator, batch: dict, path: Path, *, title: str, device: torch.device) -> Path:
    """Training samples (target labels | exemplar | output | ground truth) of a PairDataset batch, for MLflow.
    Here, with its one caller, so that training imports (and declares in dvc.yaml) no evaluation-case code."""
    was_training = generator.training
    generator.eval()
    output = generator(
        batch["target_labels"].to(device), batch["exemplar"].to(device), batch["exemplar_labels"].to(device)
    ).image
    generator.train(was_training)
    rows = [
        {
            "target labels": to_label_indices(batch["target_labels"][i]),
            "exemplar": to_image(batch["exemplar"][i]),
            "output": to_image(output[i]),
            "ground truth": to_image(batch["target"][i]),
        }
        for i in range(len(output))
    ]
    return figures.qualitative_grid(rows, path, title=title)


def epoch_data(
    params: Params, variant: str, *, manifests: Path, scenes_table: Path, parsed_index: Path
) -> list[EpochData]:
    """The datasets of every epoch, phase 1 then phase 2, from the manifests directory, the scenes table and the
    parsed labels' index. Phase 1's first `train.warmup_epochs` train without D, on the cross task and
    self-reconstruction of the same target patches (Eq. 10 at patch size; not for `no_global`). `spade_vae`
    reconstructs every target from itself, warm-up included."""
    tables = read_manifests(manifests)
    scenes, parsed = pd.read_parquet(scenes_table), pd.read_parquet(parsed_index)
    sizes = {
        "image_size": params.manifest.image_size,
        "patch_size": params.manifest.patch_size,
        "cache_size": len(scenes),
    }
    spec = VARIANTS[variant]
    use_global, self_only = spec.global_task, spec.vae
    epochs = []
    for phase, count in ((1, params.train.phase1_epochs), (2, params.train.phase2_epochs)):
        rows = phase_rows(tables, phase=phase, use_global=use_global, self_reconstruction=self_only)
        for epoch in sorted(rows["cross"]["epoch"].unique())[:count]:
            datasets = {task: PairDataset(r[r["epoch"] == epoch], scenes, parsed, **sizes) for task, r in rows.items()}
            adversarial = len(epochs) >= params.train.warmup_epochs  # phase 1 comes first
            if not adversarial and use_global and not self_only:  # spade_vae's cross rows are these already
                own = self_reconstruction_rows(rows["cross"][rows["cross"]["epoch"] == epoch])
                datasets["global"] = PairDataset(own, scenes, parsed, **sizes)
            epochs.append(EpochData(cross=datasets["cross"], global_=datasets.get("global"), adversarial=adversarial))
    return epochs


@flow(name="train")
def train_stage(params: Params, variant: str) -> None:
    context = init_distributed()
    paths = stage_paths()
    out = paths["variant_models"] / variant
    with tracked_stage(f"train@{variant}", params) as run:
        modules = build_training(
            variant, model=params.model, train=params.train, device=context.device, pretrained=paths["pretrained"]
        )
        generator = modules.generator
        run.log_metrics({"pretrained_tensors_not_loaded": len(modules.pretrained.not_loaded)})
        depends_on = {
            "model": params.model.model_dump(mode="json"),
            "manifest": params.manifest.model_dump(mode="json"),
        }
        depends_on["train"] = params.train.model_dump(mode="json", exclude={"checkpoint_every"})
        deps = gather(run.deps, context)[0]  # rank 0 hashed them for the lineage record
        checkpoint = out / "checkpoints" / checkpoint_name(depends_on, deps)
        if context.is_main:
            discard_other_checkpoints(checkpoint)
        epochs = epoch_data(
            params,
            variant,
            manifests=paths["manifests"],
            scenes_table=paths["scenes_table"],
            parsed_index=paths["parsed"] / PARSED_INDEX,
        )
        samples = next(iter(DataLoader(epochs[0].cross, batch_size=4)))  # fixed rows, shown at every checkpoint
        attention_rows = []  # the attention probe on `samples` at each checkpoint
        with tempfile.TemporaryDirectory(prefix="egsynth-samples-") as scratch:

            def log_samples(step: int, _: Path) -> None:
                grid = sample_grid(
                    generator,
                    samples,
                    Path(scratch) / f"step{step:06d}.png",
                    title=f"{variant}, step {step}",
                    device=context.device,
                )
                run.log_artifact(grid, "samples")
                attention = attention_probe(generator, samples, device=context.device)
                if attention:
                    attention_rows.append({"step": step} | attention)
                    run.log_metrics({"attention": attention}, step=step)

            result = train_gan(
                generator=generator,
                discriminator=modules.discriminator,
                perceptual=modules.perceptual,
                epochs=epochs,
                config=params.train,
                variant=variant,
                checkpoint_path=checkpoint,
                params=depends_on,
                device=context.device,
                on_step=lambda step, losses: run.log_metrics(losses, step=step),
                on_checkpoint=log_samples,
            )
        if context.is_main:
            save_generator(generator, params.model, out / "generator.pt")
            with atomic_path(paths["training_curves"] / f"{variant}.csv") as staging:
                pd.DataFrame(result.history).to_csv(staging, index=False)
            with atomic_path(paths["attention_curves"] / f"{variant}.csv") as staging:
                pd.DataFrame(attention_rows, columns=["step", *ATTENTION_STATISTICS]).to_csv(staging, index=False)
            run.log_metrics({"rollbacks": result.rollbacks, "steps": result.steps})


if __name__ == "__main__":
    run_stage(train_stage, sys.argv[1])
