"""A stage process's fixed cost: `python -m pipeline.filter` on the smoke preset's few scenes, start to exit.

Every DVC stage is its own process, which imports Prefect, MLflow, DVC and the library, reads dvc.yaml and
opens its MLflow run before its own work: about a dozen times per `dvc repro`. The filter stage on the smoke
preset's 32 scenes has almost no work of its own, so its wall time is that fixed cost.

The measurement runs in a scratch copy of this checkout's source (tracked and unignored files, with
configs/smoke.yaml as params.yaml) that the `scenes` stage fills first, against one Prefect server started for
it (`pipeline.prefect_server`), as under `make repro`; the checkout is only read. The stages run the copy's
code. After the timed runs it breaks one run down: the slowest top-level imports (`python -X importtime`) and
the top cumulative entries of a cProfile of it (which slows what it profiles somewhat).

Run: .venv/bin/python benchmarks/stage_startup.py [--repeats 5] [--top 15]
"""

import argparse
import os
import pstats
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # pipeline/ is no installed package

from pipeline.prefect_server import prefect_server  # noqa: E402
from tests._repo import copy_repo, smoke_params, stage_env  # noqa: E402  (the end-to-end tests' scratch copy)

STAGE = "pipeline.filter"


def run(command: list[str], root: Path, env: dict) -> subprocess.CompletedProcess:
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def seconds(command: list[str], root: Path, env: dict) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of the command; CPU time is the steadier on a shared machine."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    run(command, root, env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def slowest_imports(stderr: str, top: int) -> list[tuple[float, str]]:
    """(cumulative seconds, module) of the outermost imports in `python -X importtime` output (a line's name is
    indented two spaces a level, after one space), slowest first: those of `python -m`'s module, and the ones
    its functions make when they run."""
    found = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or line.count("|") != 2:
            continue
        _, cumulative, name = line.removeprefix("import time:").split("|")
        if cumulative.strip().isdigit() and name.startswith(" ") and not name.startswith("  "):
            found.append((int(cumulative) / 1e6, name.strip()))
    return sorted(found, reverse=True)[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of the stage (the median is reported)")
    parser.add_argument("--top", type=int, default=15, help="lines of each breakdown")
    args = parser.parse_args()
    python = sys.executable
    with tempfile.TemporaryDirectory(prefix="stage-startup-") as scratch:
        root = Path(scratch) / "repo"
        root.mkdir()
        copy_repo(root, smoke_params())
        with prefect_server(Path(scratch) / "prefect") as url:
            env = stage_env(root, url) | {
                "PYTHONPATH": os.pathsep.join(filter(None, [str(root / "src"), os.environ.get("PYTHONPATH")])),
            }
            run([python, "-m", "pipeline.scenes"], root, env)  # its input, the MLflow store and compiled modules
            run([python, "-m", STAGE], root, env)  # compiles what only this stage imports
            times = [seconds([python, "-m", STAGE], root, env) for _ in range(args.repeats)]
            interpreter = [seconds([python, "-c", "pass"], root, env) for _ in range(3)]
            imports = slowest_imports(run([python, "-X", "importtime", "-m", STAGE], root, env).stderr, args.top)
            profile = Path(scratch) / "stage.prof"
            run([python, "-m", "cProfile", "-o", str(profile), "-m", STAGE], root, env)

        print(f"python -m {STAGE} (smoke preset, running Prefect server), {args.repeats} runs:")
        for label, index in (("wall", 0), ("CPU", 1)):
            each = [run_times[index] for run_times in times]
            bare = statistics.median(run_times[index] for run_times in interpreter)
            print(
                f"  {label:4}  median {statistics.median(each):5.2f} s  {[round(s, 2) for s in each]}"
                f"  (the bare interpreter: {bare:.2f} s)"
            )
        print(f"\nslowest top-level imports (python -X importtime, cumulative s), top {args.top}:")
        for cumulative, name in imports:
            print(f"  {cumulative:7.2f}  {name}")
        print(f"\ncProfile of one run, top {args.top} by cumulative time (the import machinery left out):")
        stats = pstats.Stats(str(profile), stream=sys.stdout)
        stats.sort_stats("cumulative").print_stats(r"^(?!<frozen |\{built-in method builtins\.exec|<string>)", args.top)


if __name__ == "__main__":
    main()
