"""Duplicating-task PSNR of a generator against its training iterations, beside the class-mean baseline.

Trains one variant as the `train` stage does (pretrained MSCA weights, the manifest's pairs, Eq. 11-12)
under overrides of the `train` params and a phase schedule of its own, and prints one JSON line
before training, every `--eval-every` iterations, at the end of phase 1 and at the end: the PSNR of
the duplicating task (the exemplar is the ground truth itself, Sec. 4) on a seeded subset of the test
split, the losses and the seconds spent training. The class-mean-color baseline on the same scenes
comes first. The README's "How long training must be" numbers come from it.

Needs the pipeline's data: run `make repro` (or `dvc repro pretrain`) first.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for `pipeline`

from pipeline.train import PARSED, PRETRAINED, SCENES, epoch_data  # noqa: E402

from egsynth.config import load_params  # noqa: E402
from egsynth.data.datasets import SceneLoader, one_hot, to_image_tensor  # noqa: E402
from egsynth.data.patches import build_manifests, write_manifests  # noqa: E402
from egsynth.evaluation.evaluate import class_mean_color  # noqa: E402
from egsynth.evaluation.metrics import psnr  # noqa: E402
from egsynth.evaluation.tasks import select_test_scenes  # noqa: E402
from egsynth.losses import VGGPerceptualLoss  # noqa: E402
from egsynth.models.discriminator import build_discriminator  # noqa: E402
from egsynth.models.features import VGGFeatures  # noqa: E402
from egsynth.models.generator import build_generator  # noqa: E402
from egsynth.training import train_gan  # noqa: E402
from egsynth.training.pretrain import initialize_from_pretraining  # noqa: E402

SUBSET = 240  # a seeded subset of the test split, as `tasks.max_scenes` draws one; the first --eval-scenes are used


class StopTraining(Exception):
    """Raised from `on_step` at --max-steps: `train_gan` has no other way to stop early."""


def duplicating_cases(scenes: pd.DataFrame, parsed: pd.DataFrame, *, count: int, image_size: int, seed: int):
    """(c1 [N, H, W] class indices, x2 = the ground truth [N, 3, H, W] in [-1, 1], c~2 [N, H, W])."""
    test = select_test_scenes(scenes, max_scenes=SUBSET, seed=seed).head(count)
    loader = SceneLoader(scenes, parsed, image_size=image_size)
    items = [loader(int(i)) for i in test["image_id"]]
    return (
        torch.stack([torch.from_numpy(s.labels.copy()) for s in items]),
        torch.stack([to_image_tensor(s.image) for s in items]),
        torch.stack([torch.from_numpy(s.parsed.copy()) for s in items]),
    )


@torch.no_grad()
def mean_psnr(synthesize, cases, device: torch.device, batch_size: int = 16) -> float:
    """Mean PSNR (dB) of synthesize(c1, x2, c~2) against x2 over the cases."""
    labels, images, parsed = cases
    values = []
    for start in range(0, len(images), batch_size):
        c1, c2 = (one_hot(t[start : start + batch_size].to(device)) for t in (labels, parsed))
        x2 = images[start : start + batch_size].to(device)
        values.append(psnr(synthesize(c1, x2, c2), x2).cpu())
    return float(torch.cat(values).mean())


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
    parser.add_argument("--eval-scenes", type=int, default=96, help="test scenes evaluated (at most 240)")
    parser.add_argument("--max-steps", type=int, default=0, help="stop after this many iterations (0: all)")
    parser.add_argument("--num-workers", type=int, default=2, help="DataLoader workers")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
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
    scenes, parsed = pd.read_parquet(SCENES), pd.read_parquet(PARSED)
    cases = duplicating_cases(
        scenes, parsed, count=args.eval_scenes, image_size=params.manifest.image_size, seed=params.tasks.seed
    )
    setting = {"variant": args.variant} | {k: getattr(train, k) for k in overrides}
    print(json.dumps({"model": "class_mean", "psnr": round(mean_psnr(class_mean_color, cases, device), 3)}), flush=True)

    generator = build_generator(args.variant, params.model)
    initialize_from_pretraining(generator, torch.load(PRETRAINED, weights_only=True)["state"])
    generator.to(device)
    vgg = VGGFeatures(backbone=params.model.backbone, seed=params.model.seed, num_scales=params.model.num_scales)
    vgg.to(device)
    clock = {"training": 0.0, "since": 0.0}  # seconds spent in train_gan; the last time it was entered

    def report(step: int, losses: dict[str, float]) -> None:
        clock["training"] += time.perf_counter() - clock["since"]
        generator.eval()
        value = mean_psnr(lambda c1, x2, c2: generator(c1, x2, c2).image, cases, device)
        generator.train()
        record = setting | {"step": step, "psnr": round(value, 3), "train_seconds": round(clock["training"], 1)}
        print(json.dumps(record | {k: round(v, 4) for k, v in losses.items()}), flush=True)
        clock["since"] = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="psnr-vs-iterations-") as scratch:
        write_manifests(build_manifests(scenes, params.manifest, train, params.pretrain), Path(scratch))
        epochs = epoch_data(params, args.variant, manifests=Path(scratch))
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
                discriminator=build_discriminator(train),
                perceptual=VGGPerceptualLoss(layers=vgg.perceptual_layers),
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
