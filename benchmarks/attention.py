"""MSCA (Eq. 4-8) against dense cross-attention (`full_attention`, CoCosNet-style): forward + backward
time and peak memory per feature-map side, N = M = 64, K = 16, batch 1, exemplar and target the same size.

Run: .venv/bin/python benchmarks/attention.py [--device cpu|cuda] [--sides 16 32 64 128 256]
     [--repeats 5] [--memory-limit-gib 8] [--json PATH]

Every (method, side) is measured in fresh subprocesses, one for time and one for memory, so that no
measurement inherits another's allocator state; each does one untimed warm-up pass first.
- Time: median of up to --repeats forward + backward passes (fewer once 30 s are spent).
- Peak memory of one forward + backward pass: on CUDA `torch.cuda.max_memory_allocated()` above the
  memory allocated before the pass; on CPU the peak resident set (Linux VmHWM, reset by writing 5 to
  /proc/self/clear_refs) above the resident set before the pass, with glibc told to return freed
  blocks at once, so that it follows the live tensors (plus allocator slack).
Dense attention is skipped, never attempted, where its estimated peak, five HW x HW float32 tensors,
exceeds --memory-limit-gib (measured peaks: 4.1 such tensors on CPU at side 64, 5.1 on CUDA at side
64, 82 GiB = 5.0 x 16 GiB at side 256 on an H200).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

N = M = 64  # channels of F_x and F_c
K = 16  # attention maps
DENSE_COPIES = 5  # HW x HW float32 tensors alive at dense attention's peak (the correspondence, gradients)
TIME_BUDGET_S = 30.0  # stop repeating a measurement after this much time
METHODS = ("msca", "dense")


def dense_peak_bytes(side: int) -> int:
    """Estimated peak of dense attention at a side x side map: DENSE_COPIES tensors of HW x HW float32."""
    return DENSE_COPIES * (side * side) ** 2 * 4


def _cpu_memory_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} missing from /proc/self/status")


def measure(method: str, side: int, device: str, repeats: int, what: str) -> dict:
    """One method at one side, in this process: median ms (`what` = time) or peak MiB (memory) of forward + backward."""
    import torch

    from egsynth.models.msca import MSCA, DenseAttention

    torch.manual_seed(0)
    module = (MSCA(N, M, K) if method == "msca" else DenseAttention(N, M, max_side=None)).to(device)
    inputs = [torch.randn(1, c, side, side, device=device, requires_grad=True) for c in (N, M, M)]
    weights = torch.randn(1, N, side, side, device=device)
    tensors = list(module.parameters()) + inputs

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    def step() -> None:
        f_x1, _ = module(*inputs)  # [1, N, side, side]
        (f_x1 * weights).sum().backward()
        sync()
        for tensor in tensors:
            tensor.grad = None

    step()  # untimed warm-up: lazy initializations are not the method's memory or time
    if what == "memory":
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
            step()
            peak_mib = (torch.cuda.max_memory_allocated() - before) / 2**20
            peak_measure = "cuda max_memory_allocated delta"
        else:
            Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current resident set
            before = _cpu_memory_kib("VmRSS")
            step()
            peak_mib = (_cpu_memory_kib("VmHWM") - before) / 1024
            peak_measure = "cpu peak RSS delta (VmHWM; glibc returns freed blocks at once)"
        return {"peak_mib": round(peak_mib, 1), "peak_measure": peak_measure}
    times = []
    start = time.perf_counter()
    while len(times) < repeats and (not times or time.perf_counter() - start < TIME_BUDGET_S):
        t0 = time.perf_counter()
        step()
        times.append((time.perf_counter() - t0) * 1000)
    return {"ms": round(statistics.median(times), 3), "repeats": len(times), "threads": torch.get_num_threads()}


# glibc malloc hands blocks above 64 KiB straight back to the OS when freed, so that the resident set
# follows live tensors (its default, a threshold that grows with use, would keep freed blocks resident)
MEMORY_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}


def run_isolated(method: str, side: int, device: str, repeats: int) -> dict:
    """Time and memory of one method at one side, each in a fresh subprocess."""
    record = {"resolution": side, "method": method, "device": device}
    for what in ("time", "memory"):
        command = [sys.executable, __file__, "--worker", method, str(side), what]
        command += ["--device", device, "--repeats", str(repeats)]
        env = {**os.environ, **MEMORY_ENV} if what == "memory" else None
        result = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            return {**record, "skipped": f"{what} run failed (exit {result.returncode}): {last}"}
        record.update(json.loads(result.stdout.strip().splitlines()[-1]))
    return record


def table(records: list[dict]) -> str:
    by_key = {(r["resolution"], r["method"]): r for r in records}
    lines = [
        f"{'side':>5} {'HW':>6} | {'MSCA ms':>9} {'MSCA MiB':>9} | {'dense ms':>10} {'dense MiB':>10} | "
        f"{'dense/MSCA time':>15}",
        "-" * 80,
    ]
    for side in sorted({r["resolution"] for r in records}):
        msca, dense = by_key.get((side, "msca"), {}), by_key.get((side, "dense"), {})
        cells = [f"{side:>5} {side * side:>6} |"]
        for record, width in ((msca, 9), (dense, 10)):
            if "ms" in record:
                cells.append(f"{record['ms']:>{width}.1f} {record['peak_mib']:>{width}.1f} |")
            else:
                cells.append(f"{'skipped':>{width}} {'-':>{width}} |")
        ratio = dense["ms"] / msca["ms"] if "ms" in msca and "ms" in dense else None
        cells.append(f"{ratio:>14.0f}x" if ratio else f"{'-':>15}")
        lines.append(" ".join(cells))
    notes = [f"  {r['method']} at {r['resolution']}: skipped, {r['skipped']}" for r in records if "skipped" in r]
    return "\n".join(lines + notes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--sides", type=int, nargs="+", default=[16, 32, 64, 128, 256])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--memory-limit-gib", type=float, default=8.0)
    parser.add_argument("--json", type=Path, help="write the records to this file")
    parser.add_argument("--worker", nargs=3, metavar=("METHOD", "SIDE", "WHAT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        method, side, what = args.worker
        print(json.dumps(measure(method, int(side), args.device, args.repeats, what)))
        return

    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    name = torch.cuda.get_device_name() if args.device == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(
        f"MSCA vs dense attention, forward + backward, N = M = {N}, K = {K}, batch 1; {name}; torch {torch.__version__}"
    )
    records = []
    for side in args.sides:
        for method in METHODS:
            estimate = dense_peak_bytes(side)
            if method == "dense" and estimate > args.memory_limit_gib * 2**30:
                reason = (
                    f"estimated peak {estimate / 2**30:.0f} GiB ({DENSE_COPIES} HW x HW float32 tensors, "
                    f"HW = {side * side}) exceeds --memory-limit-gib {args.memory_limit_gib:g}"
                )
                records.append({"resolution": side, "method": method, "device": args.device, "skipped": reason})
            else:
                records.append(run_isolated(method, side, args.device, args.repeats))
            print(f"  {method} {side}x{side}: {records[-1].get('ms', 'skipped')} ms", file=sys.stderr, flush=True)
    peak_measures = sorted({r["peak_measure"] for r in records if "peak_measure" in r})
    print(table(records))
    print(f"peak memory: {', '.join(peak_measures)}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(records, indent=2) + "\n")
        print(f"records written to {args.json}")


if __name__ == "__main__":
    main()
