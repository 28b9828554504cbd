"""Where a GAN run stands, and what lets a resumed run end with the weights of an uninterrupted one.

A checkpoint every `checkpoint_every` steps and at the end holds `RunState` (the step and the exact data
position), G, D, both optimizers and every RNG state (`checkpoint.py`); a run killed at any point and
restarted with the same params continues at the next batch and ends with the same weights as an
uninterrupted run. For that the batches follow a deterministic order (`epochs.py`), a fresh run seeds
every generator from `train.seed` (`seed_everything`), and torch's deterministic algorithms are on
(`deterministic_algorithms`; on an H200 a resumed CUDA run without them drifted by ~1e-3 from the
uninterrupted one, with them it was bit-identical, at a cost of 0-25% per step). `check_resumable`
refuses a checkpoint of another variant, other data or other frozen weights.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from egsynth.training.checkpoint import CheckpointError


@dataclass
class RunState:
    """Where the run stands; all of it goes into every checkpoint."""

    step: int = 0  # iterations done
    epoch: int = 0  # position of the next batch: epoch index ...
    batch: int = 0  # ... and batch index within it
    rollbacks: int = 0
    consecutive: int = 0  # rollbacks in a row, up to the latest iteration
    history: list[dict[str, float]] = field(default_factory=list)


def check_resumable(
    state: Mapping[str, Any], path: Path, *, variant: str, epoch_batches: list[int], g_frozen: str
) -> None:
    """Beyond the params (checked by load_checkpoint): same variant, same data length, same frozen weights."""
    if state["variant"] != variant:
        raise CheckpointError(f"checkpoint {path} is of variant {state['variant']!r}, not {variant!r}")
    if state["epoch_batches"] != epoch_batches:
        raise CheckpointError(
            f"checkpoint {path} was written for epochs of {state['epoch_batches']} batches, the data now gives "
            f"{epoch_batches}: the data changed; delete the checkpoint to start over"
        )
    if state["generator_frozen_digest"] != g_frozen:
        raise CheckpointError(
            f"checkpoint {path} was trained with other frozen generator weights (the VGG-19 backbone file "
            f"changed under the same params); delete the checkpoint to start over"
        )


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # CPU and every CUDA device


@contextmanager
def deterministic_algorithms(enabled: bool, device: torch.device) -> Iterator[None]:
    """torch's deterministic algorithms (and cuDNN's) for the duration of the training; restored after."""
    previous = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    previous_cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    if enabled:
        if device.type == "cuda":
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = previous_cudnn
