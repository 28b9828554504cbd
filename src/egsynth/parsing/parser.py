"""The exemplar label parser c~ = parse(exemplar image) (paper Sec. 4, "Implementation details": a
COCO-stuff pretrained DeepLab-v2 produces the exemplars' label maps).

No pretrained weights are downloaded (docs/design.md, "Pretrained networks, offline"). A parser comes
from one of three sources (`ParserConfig.source`), each labelled wherever its outputs are used:
- `train`: a torchvision segmentation network, built without any pretrained weights and trained
  from scratch on the train split ("<architecture>-trained");
- `checkpoint`: such a network, or the paper's DeepLab-v2 (`deeplabv2_resnet101`: deeplab-pytorch's
  COCO-stuff checkpoints as they are, see `deeplabv2.py`), loaded from a state dict file
  ("checkpoint:<file name>");
- `oracle`: no network, the parsed labels are the ground truth ("oracle").

Training: cross-entropy over the 171 contiguous classes (unlabeled ignored), Adam, DeepLab's "poly"
learning-rate decay (lr * (1 - step / steps) ** 0.9), random horizontal flips, then "precise BN"
(batch-norm statistics re-estimated with the final weights); every random choice comes from
`config.seed`. Inference runs in eval mode.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader
from torchvision.models import segmentation
from tqdm import tqdm

from egsynth.config import ParserConfig
from egsynth.data import cocostuff
from egsynth.data.labels import INDEX_TO_VALUE, UNLABELED_INDEX
from egsynth.data.source import DatasetError
from egsynth.devices import default_device
from egsynth.io import torch_load_problem
from egsynth.parsing import deeplabv2
from egsynth.parsing.data import SceneDataset, image_tensor, read_image, read_label_map

log = logging.getLogger(__name__)

ARCHITECTURES = {
    "lraspp_mobilenet_v3_large": partial(segmentation.lraspp_mobilenet_v3_large, weights=None, weights_backbone=None),
    "deeplabv3_mobilenet_v3_large": partial(
        segmentation.deeplabv3_mobilenet_v3_large, weights=None, weights_backbone=None
    ),
    "deeplabv3_resnet50": partial(segmentation.deeplabv3_resnet50, weights=None, weights_backbone=None),
    "deeplabv2_resnet101": deeplabv2.deeplabv2_resnet101,
}
"""Networks a parser can be, each built by `(num_classes=...)` with fresh weights and returning {"out": logits
[B, C, H, W]} for [-1, 1] images: torchvision's, and DeepLab-v2 in deeplab-pytorch's checkpoint layout."""

POLY_POWER = 0.9  # DeepLab's poly learning-rate decay
PRECISE_BN_BATCHES = 200  # batches that re-estimate the batch-norm statistics after training


class ParserError(DatasetError):
    """A parser weights file that cannot be used; the message names the file and the problem."""


# ----------------------------------------------------------------------------
# networks


def build_parser(architecture: str, num_classes: int = cocostuff.NUM_CLASSES) -> nn.Module:
    """A segmentation network of ARCHITECTURES with freshly initialized weights; nothing is downloaded."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown parser architecture {architecture!r} (expected one of: {', '.join(ARCHITECTURES)})")
    return ARCHITECTURES[architecture](num_classes=num_classes)


def train_parser(
    config: ParserConfig,  # architecture, image_size, epochs, batch_size, lr, seed
    scenes: pd.DataFrame,  # a scenes table; its `split == "train"` rows are trained on
    *,
    device: torch.device | str | None = None,  # None: CUDA when present, else CPU
) -> tuple[nn.Module, dict[str, Any]]:
    """Train a parser from scratch; return (model in eval mode, history).

    After the last epoch the batch-norm statistics are re-estimated with the final weights
    (`precise_batch_norm`). History: {"epoch_loss": mean loss per epoch, "steps", "train_images",
    "bn_batches", "seconds"}.
    """
    train = scenes[scenes["split"] == "train"]
    if train.empty:
        raise ValueError("no train scenes to train the parser on")
    device = torch.device(device) if device is not None else default_device()
    dataset = SceneDataset(train, image_size=config.image_size)
    generator = torch.Generator().manual_seed(config.seed)  # shuffling and flips
    loader = DataLoader(
        dataset,
        batch_size=config.batch_size,
        shuffle=True,
        generator=generator,
        drop_last=len(dataset) > config.batch_size,  # no 1-image batch for batch norm
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = build_parser(config.architecture).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    steps = max(1, config.epochs * len(loader))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: (1 - step / steps) ** POLY_POWER)

    model.train()
    history: dict[str, Any] = {"epoch_loss": [], "steps": 0, "train_images": len(dataset)}
    started = time.perf_counter()
    for epoch in range(config.epochs):
        losses = []
        progress = tqdm(loader, desc=f"parser epoch {epoch + 1}/{config.epochs}", unit="batch")
        for images, targets in progress:  # [B, 3, S, S], [B, S, S]
            flip = torch.rand(len(images), generator=generator) < 0.5  # [B]
            images = torch.where(flip[:, None, None, None], images.flip(-1), images)
            targets = torch.where(flip[:, None, None], targets.flip(-1), targets)
            if (targets == UNLABELED_INDEX).all():  # nothing to learn; cross-entropy would be NaN
                schedule.step()
                continue
            images, targets = images.to(device), targets.to(device)
            logits = model(images)["out"]  # [B, C, S, S]
            loss = F.cross_entropy(logits, targets, ignore_index=UNLABELED_INDEX)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
            history["steps"] += 1
            progress.set_postfix(loss=f"{losses[-1]:.3f}")
        history["epoch_loss"].append(float(np.mean(losses)) if losses else float("nan"))
    if config.epochs:
        history["bn_batches"] = precise_batch_norm(model, loader, device=device)
    history["seconds"] = time.perf_counter() - started
    model.eval()
    return model, history


def precise_batch_norm(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],  # (images [B, 3, S, S], anything)
    *,
    device: torch.device | str,
    max_batches: int = PRECISE_BN_BATCHES,
) -> int:
    """Re-estimate every batch norm's running statistics with the final weights; return batches used.

    "Precise BN" (Wu & Johnson, "Rethinking 'Batch' in BatchNorm", 2021): the running mean and
    variance become the plain average over the batches instead of an exponential average taken while
    the weights moved. torchvision's MobileNetV3 uses momentum 0.01, so after a short training from
    scratch its exponential averages trail the weights by ~100 steps and eval-mode predictions
    collapse (measured on the embedded default: test pixel accuracy 0.55 before, 0.81 after).
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative moving average
    was_training = model.training
    model.train()
    used = 0
    with torch.no_grad():
        for images, _ in batches:
            if used == max_batches:
                break
            model(images.to(device))
            used += 1
    for norm, momentum in zip(norms, momenta, strict=True):
        norm.momentum = momentum
    model.train(was_training)
    return used


def predict_labels(
    model: nn.Module,
    images: Sequence[np.ndarray | Image.Image],  # RGB images of any sizes
    *,
    image_size: int,  # the square side the model was trained at
    batch_size: int = 32,
) -> list[np.ndarray]:
    """Parse images into stuffthingmaps label maps ([H, W] uint8, values id - 1) at each image's own size.

    The model runs in eval mode at `image_size`; its logits are upsampled bilinearly to the image's
    original size before the argmax. The model's train/eval mode is restored afterwards.
    """
    images = [np.asarray(im.convert("RGB")) if isinstance(im, Image.Image) else im for im in images]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    parsed = []
    try:
        with torch.no_grad():
            for start in range(0, len(images), batch_size):
                chunk = images[start : start + batch_size]
                x = torch.stack([image_tensor(image, image_size) for image in chunk]).to(device)  # [B, 3, S, S]
                logits = model(x)["out"]  # [B, C, S, S]
                for logit, image in zip(logits, chunk, strict=True):
                    size = image.shape[:2]
                    logit = F.interpolate(logit[None], size=size, mode="bilinear", align_corners=False)  # [1, C, H, W]
                    index = logit[0].argmax(0).to(torch.uint8).cpu().numpy()  # [H, W]
                    parsed.append(INDEX_TO_VALUE[index])
    finally:
        model.train(was_training)
    return parsed


# ----------------------------------------------------------------------------
# parsers from their source


@dataclass(frozen=True, eq=False)
class Parser:
    """A label parser ready to use: a network (`train`, `checkpoint`) or the ground truth (`oracle`)."""

    label: str  # names the parser wherever its outputs are used, e.g. "oracle"
    source: str  # train | checkpoint | oracle
    model: nn.Module | None = None  # None for the oracle
    architecture: str | None = None
    image_size: int | None = None  # square input side of the network

    def parse(self, scenes: pd.DataFrame, *, batch_size: int = 32) -> list[np.ndarray]:
        """Label maps of the rows' images (stuffthingmaps values, each at its image's size)."""
        if self.model is None:
            return [read_label_map(path) for path in scenes["label_path"]]
        images = [read_image(path) for path in scenes["image_path"]]
        return predict_labels(self.model, images, image_size=self.image_size, batch_size=batch_size)


def trained_label(architecture: str) -> str:
    return f"{architecture}-trained"


def make_parser(
    config: ParserConfig, scenes: pd.DataFrame, *, device: torch.device | str | None = None
) -> tuple[Parser, dict[str, Any]]:
    """The parser `config.source` asks for, and its training history (empty unless trained)."""
    if config.source == "oracle":
        return Parser(label="oracle", source="oracle"), {}
    if config.source == "checkpoint":
        model = load_checkpoint(config.checkpoint, config.architecture).to(device or default_device()).eval()
        label = f"checkpoint:{Path(config.checkpoint).name}"
    else:
        model, history = train_parser(config, scenes, device=device)
        label = trained_label(config.architecture)
    parser = Parser(
        label=label, source=config.source, model=model, architecture=config.architecture, image_size=config.image_size
    )
    return parser, history if config.source == "train" else {}


# ----------------------------------------------------------------------------
# files


def _load(path: Path) -> Any:
    if not path.is_file():
        raise ParserError(f"{path}: parser weights file not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for a bad file
        raise ParserError(f"{path}: not a readable torch weights file: {torch_load_problem(error)}") from None


def _state_dict_into(model: nn.Module, state_dict: Any, path: Path, what: str) -> nn.Module:
    """Load `state_dict` strictly, or raise one ParserError naming the file and what does not match."""
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise ParserError(f"{path}: expected a state dict (parameter name -> tensor) of {what}")
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    reshaped = [k for k in expected if k in state_dict and state_dict[k].shape != expected[k].shape]
    if missing or unexpected or reshaped:
        problems = [
            f"{len(keys)} {kind} (e.g. {keys[0]!r})"
            for kind, keys in (
                ("missing keys", missing),
                ("unexpected keys", unexpected),
                ("shape mismatches", reshaped),
            )
            if keys
        ]
        raise ParserError(f"{path}: not a state dict of {what}: {', '.join(problems)}")
    model.load_state_dict(state_dict)
    return model


def load_checkpoint(path: Path | str, architecture: str, num_classes: int = cocostuff.NUM_CLASSES) -> nn.Module:
    """A network `build_parser(architecture)` with the weights of `path` (CPU, eval mode).

    `path` holds a state dict, or a saved parser (`save_parser`'s dict, its "state_dict" is used).
    """
    path = Path(path)
    payload = _load(path)
    if isinstance(payload, dict) and "state_dict" in payload:
        payload = payload["state_dict"]
    what = f"{architecture} with {num_classes} classes"
    return _state_dict_into(build_parser(architecture, num_classes), payload, path, what).eval()


def save_parser(parser: Parser, path: Path | str) -> None:
    """Write the parser as a dict loadable with `torch.load(weights_only=True)`.

    Keys: label, source, num_classes, and for a network also architecture, image_size, state_dict
    (CPU tensors). The oracle has no state_dict.
    """
    payload: dict[str, Any] = {"label": parser.label, "source": parser.source, "num_classes": cocostuff.NUM_CLASSES}
    if parser.model is not None:
        payload |= {
            "architecture": parser.architecture,
            "image_size": parser.image_size,
            "state_dict": {k: v.detach().cpu() for k, v in parser.model.state_dict().items()},
        }
    torch.save(payload, path)


def load_parser(path: Path | str, *, device: torch.device | str | None = None) -> Parser:
    """The parser `save_parser` wrote to `path`, its network in eval mode on `device` (default: CUDA if present)."""
    path = Path(path)
    payload = _load(path)
    if not isinstance(payload, dict) or not {"label", "source"} <= payload.keys():
        raise ParserError(f"{path}: not a saved parser (expected a dict with label, source and state_dict)")
    if payload["source"] == "oracle":
        return Parser(label=payload["label"], source="oracle")
    for key in ("architecture", "image_size", "num_classes", "state_dict"):
        if key not in payload:
            raise ParserError(f"{path}: saved {payload['source']} parser has no {key!r}")
    architecture, num_classes = payload["architecture"], payload["num_classes"]
    if architecture not in ARCHITECTURES:
        raise ParserError(f"{path}: unknown parser architecture {architecture!r}")
    what = f"{architecture} with {num_classes} classes"
    model = _state_dict_into(build_parser(architecture, num_classes), payload["state_dict"], path, what)
    return Parser(
        label=payload["label"],
        source=payload["source"],
        model=model.to(device or default_device()).eval(),
        architecture=architecture,
        image_size=int(payload["image_size"]),
    )
