"""What the benchmarks that read a built pipeline's models and evaluation cases share: where the pipeline is, which
variants to load, and the cases with the image size they are synthesized at. Imported by those scripts once they put
the repository root on sys.path (for `pipeline`)."""

import argparse
import os
from pathlib import Path

import pandas as pd
from pipeline._stage import PARAMS_FILE, StagePaths, stage_paths

from egsynth.config import load_params
from egsynth.evaluation.cases import read_cases


def add_pipeline_arguments(parser: argparse.ArgumentParser) -> None:
    """--root (the built repository) and --variants (the trained generators to load)."""
    parser.add_argument("--root", type=Path, default=Path("."), help="a repository with the pipeline's outputs")
    parser.add_argument("--variants", nargs="+", default=["full", "gap"])


def open_pipeline(root: Path) -> tuple[StagePaths, pd.DataFrame, int]:
    """dvc.yaml's paths, the evaluation cases and the generators' image size of the pipeline built at `root`, made
    the working directory (the cases name their files relative to it)."""
    image_size = load_params(root / PARAMS_FILE).manifest.image_size
    os.chdir(root)
    paths = stage_paths()
    return paths, read_cases(paths["cases"]), image_size
