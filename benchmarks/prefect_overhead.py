"""Prefect's per-stage overhead: a stage process with an empty flow vs. the same process without Prefect.

Each DVC stage is its own process; without PREFECT_API_URL, Prefect starts a temporary local server
in it. Run: .venv/bin/python benchmarks/prefect_overhead.py [--repeats 3]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

PLAIN = "import egsynth.config\n"
WITH_PREFECT = """
import egsynth.config
from prefect import flow

@flow(name="empty")
def empty():
    return None

empty()
"""


def seconds(code: str, env: dict) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "PREFECT_HOME": home}
        env.pop("PREFECT_API_URL", None)
        plain = [seconds(PLAIN, env) for _ in range(args.repeats)]
        prefect = [seconds(WITH_PREFECT, env) for _ in range(args.repeats)]
    for label, times in (("without Prefect", plain), ("with an empty Prefect flow", prefect)):
        print(f"process {label}: median {statistics.median(times):.2f} s  {[round(s, 2) for s in times]}")
    print(f"Prefect overhead per stage: {statistics.median(prefect) - statistics.median(plain):.2f} s")


if __name__ == "__main__":
    main()
