import subprocess
import sys

import pytest

from egsynth import memory

LARGE = 64 << 20  # bytes: above glibc's largest mmap threshold (32 MiB)

ALLOCATE_AGAIN_AND_AGAIN = f"""
import ctypes, resource, sys
from egsynth.memory import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else None
libc = ctypes.CDLL(None)
libc.malloc.argtypes, libc.malloc.restype = [ctypes.c_size_t], ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]

def allocate_touch_free():
    pointer = libc.malloc({LARGE})
    ctypes.memset(pointer, 1, {LARGE})
    libc.free(pointer)

allocate_touch_free()  # the first time faults in either case
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
    allocate_touch_free()
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults_of_repeated_large_allocations(mode: str) -> tuple[str, int]:
    """(what keep_freed_memory returned, or None when not called; minor page faults of 4 more allocations),
    in a fresh process, since the setting is process-wide."""
    result = subprocess.run(
        [sys.executable, "-c", ALLOCATE_AGAIN_AND_AGAIN, mode], capture_output=True, text=True, check=True
    )
    kept, faults = result.stdout.split()
    return kept, int(faults)


def test_keep_freed_memory_serves_a_repeated_large_allocation_from_pages_already_touched():
    kept, faults_kept = page_faults_of_repeated_large_allocations("keep")
    if kept != "True":
        pytest.skip("the C library has no mallopt (not glibc)")
    _, faults_default = page_faults_of_repeated_large_allocations("default")
    assert faults_default > 0  # glibc maps every one afresh
    assert faults_kept < faults_default / 10


def test_keep_freed_memory_says_so_when_the_c_library_has_no_mallopt(monkeypatch):
    monkeypatch.setattr(memory.ctypes, "CDLL", lambda name: object())
    assert memory.keep_freed_memory() is False
