"""How the C library's malloc serves a CPU training loop's large tensors.

glibc serves every allocation above its mmap threshold (at most 32 MiB) with fresh pages from the
kernel and unmaps them on free, so a tensor that large, allocated anew every step, page-faults on
the first touch of each of its 4 KiB pages. The parser's logits and their gradients ([B, 171, S, S]
float32, 45 MB at batch 16 and 64 px) are such tensors: about 69,000 page faults a training step and
a quarter of the step's CPU time (`benchmarks/parser_stage.py`). Kept in the heap instead, the same
memory is reused step after step. Where tensors live changes no number a computation produces.
"""

from __future__ import annotations

import ctypes

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_MAX = -4
LARGEST_TRIM_THRESHOLD = 2**31 - 1  # mallopt takes an int


def keep_freed_memory() -> bool:
    """Make malloc keep freed memory for the next allocation; return whether it took effect.

    No allocation is served by mmap and the heap is never trimmed, so the process holds its peak heap
    until it exits. A process-wide setting, for a stage's entry point; False where the C library has no
    mallopt or ignores it (any C library but glibc).
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(M_MMAP_MAX, 0) == 1 and mallopt(M_TRIM_THRESHOLD, LARGEST_TRIM_THRESHOLD) == 1
