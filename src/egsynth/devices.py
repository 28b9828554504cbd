"""Where computation runs: the one place a device is chosen (docs/design.md, "Scale": CPU works
everywhere, a GPU is used when present). Stages, the parser, torchrun processes, the command line and
the benchmarks all default to `default_device`."""

from __future__ import annotations

import torch


def default_device(local_rank: int | None = None) -> torch.device:
    """CUDA when present, else the CPU. `local_rank` names a torchrun process's own GPU (`cuda:<local_rank>`);
    without it the device is plain `cuda`, the current GPU."""
    if not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda") if local_rank is None else torch.device("cuda", local_rank)
