"""Scenes per second of the embedded dataset writer (render + JPEG/PNG + RLE annotations).

Run: .venv/bin/python benchmarks/scenes.py [--count 600] [--size 128]
"""

import argparse
import logging
import tempfile
import time
from pathlib import Path

from egsynth.config import ScenesConfig
from egsynth.data.embedded import write_embedded_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=600)
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args()
    logging.disable(logging.INFO)
    for workers in (1, 2):
        config = ScenesConfig(
            num_train=args.count - args.count // 5,
            num_val=args.count // 5,
            height=args.size,
            width=args.size,
            workers=workers,
        )
        with tempfile.TemporaryDirectory() as root:
            start = time.perf_counter()
            write_embedded_dataset(config, Path(root))
            seconds = time.perf_counter() - start
        print(
            f"{args.count} scenes at {args.size}x{args.size}, {workers} worker(s): "
            f"{seconds:.1f} s, {args.count / seconds:.0f} scenes/s"
        )


if __name__ == "__main__":
    main()
