"""Non-finite losses in the GAN loop (`gan.py`): restore the iteration's start and skip its batch.

The iteration's buffers (spectral-norm vectors, batch-norm statistics) are snapshotted in memory before
it starts (`snapshot_buffers`); since no optimizer steps before the finiteness check, this snapshot plus
the untouched weights and optimizer states *is* the last good state. A NaN/inf loss or gradient restores
it (`restore_buffers`), skips the batch (its step still counts, so the data position and the G schedule
stay aligned), logs a warning and counts it (`count_rollback`, into `TrainResult.rollbacks`);
`max_consecutive_rollbacks` in a row raise `NonFiniteLossError`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from egsynth.training.run_state import RunState

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """Too many consecutive batches gave non-finite losses: the training diverged or the data is broken."""


def snapshot_buffers(modules: Sequence[nn.Module]) -> list[dict[str, Tensor]]:
    return [{name: b.detach().clone() for name, b in m.named_buffers()} for m in modules]


def restore_buffers(modules: Sequence[nn.Module], snapshot: list[dict[str, Tensor]]) -> None:
    with torch.no_grad():
        for module, saved in zip(modules, snapshot, strict=True):
            for name, b in module.named_buffers():
                b.copy_(saved[name])


def count_rollback(run: RunState, losses: dict[str, float], limit: int, path: Path, last_saved: int) -> None:
    """Count a skipped batch, warn, and raise NonFiniteLossError at `limit` in a row."""
    run.rollbacks += 1
    run.consecutive += 1
    bad = ", ".join(name for name, value in losses.items() if not math.isfinite(value))
    where = f"step {run.step} (epoch {run.epoch}, batch {run.batch - 1})"
    log.warning(
        "%s: non-finite %s; rolled back to the state before this batch and skipped it (%d in a row, %d in total)",
        where,
        bad,
        run.consecutive,
        run.rollbacks,
    )
    if run.consecutive >= limit:
        raise NonFiniteLossError(
            f"{run.consecutive} consecutive batches gave non-finite losses or gradients (last: {where}: {bad}); "
            f"the training diverged or the data holds NaN/inf. The last checkpoint ({path}, step "
            f"{max(last_saved, 0)}) holds the last saved good state; lower train.lr or check the data"
        )
