"""Guidance of a generator against its training iterations, beside the class-mean baseline.

Trains one variant as the `train` stage does (pretrained MSCA weights, the manifest's pairs, Eq. 11-12,
warm-up epochs included) under overrides of the `train` params and a phase schedule of its own, and
prints one JSON line before training, every `--eval-every` iterations, at the end of phase 1 and at
the end: on the pipeline's first `--eval-scenes` duplicating and swap cases (`data/eval`), the mean
PSNR of each task, the swap exemplar gain (PSNR with the true exemplar minus with another case's, the
`evaluate` stage's derangement) and, with MSCA, the finest attention's entropy and label match; then
the losses and the seconds spent training. The class-mean-color baseline on the same cases comes first.

Needs the pipeline's data: run `make repro` (or `dvc repro pretrain tasks`) first.
Run: .venv/bin/python benchmarks/psnr_vs_iterations.py [--variant full] [--generator-every 1] [--lr 1e-3]
[--ndf 32] [--lambda-l1 10] [--warmup 1]
[--warmup-lr 1e-3] [--phase1 5] [--phase2 5] [--eval-every 240] [--device cuda] [--max-steps N]
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for `pipeline`

from pipeline._stage import stage_paths  # noqa: E402
from pipeline.train import PARSED_INDEX, epoch_data  # noqa: E402

from egsynth.config import load_params  # noqa: E402
from egsynth.data.encoding import one_hot  # noqa: E402
from egsynth.data.patches import build_manifests, write_manifests  # noqa: E402
from egsynth.devices import default_device  # noqa: E402
from egsynth.evaluation.cases import SWAP, read_cases  # noqa: E402
from egsynth.evaluation.evaluate import (  # noqa: E402
    case_psnr,
    class_mean_color,
    generator_synthesizer,
    other_exemplars,
    painter,
)
from egsynth.evaluation.guidance import AttentionStatistics  # noqa: E402
from egsynth.evaluation.metrics import psnr  # noqa: E402
from egsynth.evaluation.tasks import CaseDataset  # noqa: E402
from egsynth.training import train_gan  # noqa: E402
from egsynth.training.assembly import build_training  # noqa: E402

EVAL_TASKS = ("duplicating", "swap")


class StopTraining(Exception):
    """Raised from `on_step` at --max-steps: `train_gan` has no other way to stop early."""


@torch.no_grad()
def guidance(synthesize, cases: pd.DataFrame, others: pd.DataFrame, *, image_size: int, device: torch.device) -> dict:
    """Mean PSNR per task, the swap exemplar gain and (when `synthesize` attends) the attention statistics."""
    attention = AttentionStatistics()
    result = {}
    for task in EVAL_TASKS:
        values = []
        for batch in DataLoader(CaseDataset(cases[cases["task"] == task], image_size=image_size), batch_size=16):
            c1, c2 = one_hot(batch["labels"].to(device)), one_hot(batch["exemplar_labels"].to(device))
            synthesis = synthesize(c1, batch["exemplar"].to(device), c2)
            values.append(psnr(synthesis.image, batch["truth"].to(device)).cpu())
            if task == SWAP and synthesis.attention is not None:
                attention.add(synthesis.attention, c2, c1)
        result[task] = torch.cat(values).mean().item()
    other = case_psnr(synthesize, others, image_size=image_size, batch_size=16, device=device).mean().item()
    result["exemplar_gain"] = result[SWAP] - other
    if attention.maps:
        result |= attention.summary()
    return {key: round(value, 3) for key, value in result.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--variant", default="full")
    parser.add_argument("--generator-every", type=int, help="overrides train.generator_every")
    parser.add_argument("--lr", type=float, help="overrides train.lr")
    parser.add_argument("--ndf", type=int, help="overrides train.ndf")
    parser.add_argument("--lambda-l1", type=float, help="overrides train.lambda_l1")
    parser.add_argument("--warmup", type=int, help="warm-up epochs without D (default: train.warmup_epochs)")
    parser.add_argument("--warmup-lr", type=float, help="overrides train.warmup_lr")
    parser.add_argument("--phase1", type=int, help="phase-1 epochs (default: train.phase1_epochs)")
    parser.add_argument("--phase2", type=int, help="phase-2 epochs (default: train.phase2_epochs)")
    parser.add_argument("--eval-every", type=int, default=120, help="iterations between evaluations")
    parser.add_argument("--eval-scenes", type=int, default=120, help="duplicating and swap cases evaluated")
    parser.add_argument("--max-steps", type=int, default=0, help="stop after this many iterations (0: all)")
    parser.add_argument("--num-workers", type=int, default=2, help="DataLoader workers")
    parser.add_argument("--device", default=str(default_device()))
    args = parser.parse_args()

    params = load_params(args.params)
    overrides = {
        "generator_every": args.generator_every,
        "lr": args.lr,
        "ndf": args.ndf,
        "lambda_l1": args.lambda_l1,
        "warmup_epochs": args.warmup,
        "warmup_lr": args.warmup_lr,
        "phase1_epochs": args.phase1,
        "phase2_epochs": args.phase2,
    }
    train = params.train.model_validate(
        params.train.model_dump() | {k: v for k, v in overrides.items() if v is not None} | {"checkpoint_every": 10**9}
    )
    params = params.model_copy(update={"train": train})
    device = torch.device(args.device)
    paths = stage_paths()  # the pipeline's, in the working directory
    scenes = pd.read_parquet(paths["scenes_table"])
    cases = pd.concat([group.head(args.eval_scenes) for _, group in read_cases(paths["cases"]).groupby("task")])
    others = other_exemplars(cases[cases["task"] == SWAP], seed=params.tasks.seed)
    size = params.manifest.image_size
    setting = {"variant": args.variant} | {k: getattr(train, k) for k in overrides}
    baseline = guidance(painter(class_mean_color), cases, others, image_size=size, device=device)
    print(json.dumps({"model": "class_mean"} | baseline), flush=True)

    modules = build_training(
        args.variant, model=params.model, train=train, device=device, pretrained=paths["pretrained"]
    )
    generator = modules.generator.to(device)
    clock = {"training": 0.0, "since": 0.0}  # seconds spent in train_gan; the last time it was entered

    def report(step: int, losses: dict[str, float]) -> None:
        clock["training"] += time.perf_counter() - clock["since"]
        values = guidance(generator_synthesizer(generator), cases, others, image_size=size, device=device)
        generator.train()
        record = setting | {"step": step} | values | {"train_seconds": round(clock["training"], 1)}
        print(json.dumps(record | {k: round(v, 4) for k, v in losses.items()}), flush=True)
        clock["since"] = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="psnr-vs-iterations-") as scratch:
        write_manifests(build_manifests(scenes, params.manifest, train, params.pretrain), Path(scratch))
        epochs = epoch_data(
            params,
            args.variant,
            manifests=Path(scratch),
            scenes_table=paths["scenes_table"],
            parsed_index=paths["parsed"] / PARSED_INDEX,
        )
        phase1_end = sum(len(e.cross) // train.batch_size for e in epochs[: train.phase1_epochs])
        last = min(sum(len(e.cross) // train.batch_size for e in epochs), args.max_steps or 10**9)

        def on_step(step: int, losses: dict[str, float]) -> None:
            if step % args.eval_every == 0 or step in (phase1_end, last):
                report(step, losses)
            if step == args.max_steps:
                raise StopTraining

        clock["since"] = time.perf_counter()
        report(0, {})
        try:
            train_gan(
                generator=generator,
                discriminator=modules.discriminator,
                perceptual=modules.perceptual,
                epochs=epochs,
                config=train,
                variant=args.variant,
                checkpoint_path=Path(scratch) / "checkpoint.pt",
                params={"benchmark": setting},
                device=device,
                on_step=on_step,
                num_workers=args.num_workers,
                progress=False,
            )
        except StopTraining:
            pass


if __name__ == "__main__":
    main()
