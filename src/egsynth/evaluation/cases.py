"""The evaluation cases as the `tasks` stage leaves them for the later stages, without torch: the tasks'
names and the files of the cases table (`evaluation.tasks` builds the cases, and its `CaseDataset` makes
tensors of them).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from egsynth.data.source import DatasetError

TASKS = ("duplicating", "mirroring", "retrieving", "swap")
"""The tasks of Sec. 4; swap only on the embedded data, whose scenes can be rendered in another's style."""
SWAP = "swap"
"""The task whose exemplar comes from another scene: the one the exemplar gain and the attention statistics use."""
CASES_NAME = "cases.parquet"
CANDIDATES_NAME = "candidates.parquet"


def read_cases(root: Path) -> pd.DataFrame:
    path = Path(root) / CASES_NAME
    if not path.is_file():
        raise DatasetError(f"{path}: the evaluation cases are missing (run `dvc repro tasks`)")
    return pd.read_parquet(path)
