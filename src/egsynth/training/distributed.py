"""Data-parallel training under torchrun (docs/design.md, "Scale"): process group, DDP wrapping, rank-0 duties.

`init_distributed()` reads torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK; MASTER_ADDR and
MASTER_PORT for the rendezvous) and joins the process group: NCCL when CUDA is available (one GPU
per local rank), gloo on CPU. Without WORLD_SIZE it is a plain single process and starts nothing.

`train_gan` calls `current_context` and `wrap_module` itself, so the same stage runs unchanged with
`python -m ...` or `torchrun --nproc-per-node N -m ...`. Only rank 0 writes checkpoints, calls the
logging callbacks and shows progress.

SyncBatchNorm: the SPADE norm `batch` becomes `nn.SyncBatchNorm` under DDP on GPUs only; torch's
SyncBatchNorm refuses CPU tensors, so on CPU each rank keeps plain per-rank batch statistics (the
`instance` norm, the default, is batch-independent and keeps a DDP step equal to the single-process
step).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from egsynth.devices import default_device

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------
# the context


@dataclass(frozen=True)
class DistributedContext:
    rank: int  # global rank, 0..world_size-1
    world_size: int  # number of processes (1: no process group)
    local_rank: int  # rank on this machine: the CUDA device index
    device: torch.device  # where this rank's models and batches live
    is_main: bool  # rank 0: writes checkpoints, logs, shows progress

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(*, backend: str | None = None) -> DistributedContext:
    """Join torchrun's process group, or describe the single process when WORLD_SIZE is unset.

    Args:
        backend: `nccl` or `gloo`; default nccl when CUDA is available, else gloo.
    """
    if "WORLD_SIZE" not in os.environ:
        return DistributedContext(rank=0, world_size=1, local_rank=0, device=default_device(0), is_main=True)
    rank = int(os.environ["RANK"])
    world_size = int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    device = default_device(local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = backend or ("nccl" if device.type == "cuda" else "gloo")
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
        log.info("process group: rank %d of %d, backend %s, device %s", rank, world_size, backend, device)
    return DistributedContext(rank=rank, world_size=world_size, local_rank=local_rank, device=device, is_main=rank == 0)


def current_context(device: torch.device | str) -> DistributedContext:
    """The context of an already initialized process group (or the single process) on `device`."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    if not (dist.is_available() and dist.is_initialized()):
        return DistributedContext(rank=0, world_size=1, local_rank=0, device=device, is_main=True)
    rank, world_size = dist.get_rank(), dist.get_world_size()
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    return DistributedContext(rank=rank, world_size=world_size, local_rank=local_rank, device=device, is_main=rank == 0)


def destroy_distributed() -> None:
    """Leave the process group, if any (end of a torchrun stage)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


# ----------------------------------------------------------------------------
# modules


def wrap_module(module: nn.Module, ctx: DistributedContext, *, find_unused_parameters: bool = False) -> nn.Module:
    """`module` on ctx.device; under DDP wrapped in DistributedDataParallel (BatchNorm -> SyncBatchNorm on GPU).

    The wrapped module shares its parameters with `module`, which therefore holds the trained
    weights afterwards. `find_unused_parameters` is needed for networks whose forward leaves some
    parameters unused (the generator variants: e.g. `no_fm`'s masking MLP).
    """
    module.to(ctx.device)
    if not ctx.distributed:
        return module
    if ctx.device.type == "cuda":
        module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids, find_unused_parameters=find_unused_parameters)


def unwrap(module: nn.Module) -> nn.Module:
    """The network inside a DDP wrapper (itself otherwise)."""
    return module.module if isinstance(module, DistributedDataParallel) else module


# ----------------------------------------------------------------------------
# collectives (no-ops in a single process)


def average(values: Tensor, ctx: DistributedContext) -> Tensor:
    """Mean of `values` over ranks (a NaN on any rank makes the mean NaN, so every rank sees it)."""
    if ctx.distributed:
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
        values /= ctx.world_size
    return values


def gather(obj: Any, ctx: DistributedContext) -> list[Any]:
    """[obj of rank 0, obj of rank 1, ...] on every rank."""
    if not ctx.distributed:
        return [obj]
    gathered: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def barrier(ctx: DistributedContext) -> None:
    if ctx.distributed and ctx.device.type == "cuda":
        dist.barrier(device_ids=[ctx.device.index])
    elif ctx.distributed:
        dist.barrier()
