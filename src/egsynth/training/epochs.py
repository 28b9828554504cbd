"""The data of the GAN loop (`gan.py`): each epoch's datasets, cut into the batches each rank reads, in order.

An epoch has a cross dataset of patch pairs (x_p, c_p, x_q, c̃_q) for the cross-reconstruction task
(Eq. 9) and, in phase 2, a global dataset (x, c, x, c̃) for the global self-reconstruction task (Eq. 10),
cycled along the cross batches. All randomness lives in the manifest: the datasets have a deterministic
item order, and the batches here draw no global random numbers, so a resumed run reads, from its saved
(epoch, batch) position on, exactly the batches the uninterrupted run read.

DDP: `train.batch_size` is the global batch, split evenly over the ranks (DistributedSampler without
shuffling), so global batch j holds the same items whatever the world size.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from egsynth.training.distributed import DistributedContext

BATCH_KEYS = ("target", "target_labels", "exemplar", "exemplar_labels")
"""x_p [B, 3, P, P], c_p [B, C, P, P], x_q [B, 3, P, P], c̃_q [B, C, P, P] (global batches: x, c, x, c̃)."""


@dataclass(frozen=True)
class EpochData:
    """One epoch of data; both datasets have a deterministic item order (randomness lives in the manifest)."""

    cross: Dataset  # patch pairs of the cross-reconstruction task (Eq. 9)
    global_: Dataset | None = None  # global self-reconstruction (Eq. 10); None: the cross task only (phase 1)
    adversarial: bool = True  # False: a warm-up epoch, G alone on the reconstruction terms (gan.py's docstring)


def epoch_batches(dataset: Dataset, *, batch_size: int, ctx: DistributedContext, what: str) -> list[list[int]]:
    """This rank's index batches for one pass over `dataset`, in order; incomplete batches are dropped.

    Rank r of W gets items r, r + W, ... (DistributedSampler without shuffling), in batches of
    batch_size / W, so global batch j is items [j B, (j + 1) B) whatever the world size.
    """
    per_rank = batch_size // ctx.world_size
    sampler = DistributedSampler(dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=False, drop_last=True)
    indices = list(sampler)
    batches = [indices[i : i + per_rank] for i in range(0, len(indices) - per_rank + 1, per_rank)]
    if not batches:
        raise ValueError(f"{what}: {len(dataset)} items do not fill one batch of {batch_size}")  # type: ignore[arg-type]
    return batches


@dataclass
class EpochPlan:
    data: EpochData
    cross: list[list[int]]  # this rank's cross batches
    global_: list[list[int]] | None  # this rank's global batches, cycled along the cross ones

    def __len__(self) -> int:
        return len(self.cross)


def plan_epochs(epochs: Sequence[EpochData], *, batch_size: int, ctx: DistributedContext, lambda_global: float):
    plans = []
    for index, epoch in enumerate(epochs):
        cross = epoch_batches(epoch.cross, batch_size=batch_size, ctx=ctx, what=f"epoch {index} cross dataset")
        global_ = None
        if epoch.global_ is not None and lambda_global > 0:
            global_ = epoch_batches(epoch.global_, batch_size=batch_size, ctx=ctx, what=f"epoch {index} global dataset")
        plans.append(EpochPlan(data=epoch, cross=cross, global_=global_))
    return plans


def _loader(dataset: Dataset, batches: list[list[int]], *, num_workers: int, ctx: DistributedContext) -> DataLoader:
    # a private generator: creating an iterator draws a worker base seed, which must not touch the
    # global RNG (a resumed run creates its iterators at other points than an uninterrupted one)
    return DataLoader(
        dataset,
        batch_sampler=batches,
        num_workers=num_workers,
        pin_memory=ctx.device.type == "cuda",
        generator=torch.Generator().manual_seed(0),
    )


def iterate_epoch(
    plan: EpochPlan, start: int, *, num_workers: int, ctx: DistributedContext
) -> Iterator[tuple[dict[str, Any], dict[str, Any] | None]]:
    """(cross batch, global batch or None) for batches start.. of the epoch."""
    cross = _loader(plan.data.cross, plan.cross[start:], num_workers=num_workers, ctx=ctx)
    if plan.global_ is None:
        for batch in cross:
            yield batch, None
        return
    cycled = [plan.global_[i % len(plan.global_)] for i in range(start, len(plan))]
    global_ = _loader(plan.data.global_, cycled, num_workers=num_workers, ctx=ctx)
    yield from zip(cross, global_, strict=True)


def to_device(batch: Mapping[str, Any], device: torch.device, what: str) -> dict[str, Tensor]:
    missing = [key for key in BATCH_KEYS if key not in batch]
    if missing:
        raise KeyError(f"{what} batch lacks {missing} (has {sorted(batch)}); expected {list(BATCH_KEYS)}")
    return {key: batch[key].to(device, non_blocking=True) for key in BATCH_KEYS}
