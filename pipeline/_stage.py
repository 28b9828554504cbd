"""What every stage entry point shares: params at the boundary, its dvc.yaml entry, MLflow, Prefect.

A stage's deps, outs and params sections are read from dvc.yaml through DVC's own API, so the
lineage MLflow records is exactly what DVC hashes into dvc.lock, declared once.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# Prefect keeps its state (a SQLite database, settings) under PREFECT_HOME; default it into the
# repo's ignored files, so a run never depends on ~/.prefect. Prefect reads its settings when it is
# imported, so these defaults are the one thing set at import time, before the import below.
os.environ.setdefault("PREFECT_HOME", str(Path.cwd() / ".prefect"))
# This machine may have no network: no usage telemetry (it fails and logs a traceback offline).
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# The temporary server's first start in a fresh environment compiles Prefect's server modules and
# migrates a new database: over Prefect's 20 s default on a loaded two-core machine.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")

from dvc.dependency import ParamsDependency  # noqa: E402
from dvc.repo import Repo  # noqa: E402
from prefect import Flow  # noqa: E402

from egsynth import tracking  # noqa: E402
from egsynth.config import Params, ParamsError, load_params  # noqa: E402
from egsynth.data.source import DatasetError  # noqa: E402

PARAMS_FILE = "params.yaml"


def workspace() -> Path:
    """The repository (or `dvc exp run`'s copy of it) a stage runs in: DVC runs every stage from its root."""
    return Path.cwd()


@dataclass(frozen=True)
class StageSpec:
    name: str
    deps: tuple[Path, ...]
    outs: tuple[Path, ...]
    param_sections: tuple[str, ...]


def stage_spec(name: str) -> StageSpec:
    """The stage's deps, outs (metrics and plots included) and params sections, from dvc.yaml."""
    with Repo(str(workspace())) as repo:
        (stage,) = repo.stage.collect(name)
        deps = tuple(Path(dep.def_path) for dep in stage.deps if not isinstance(dep, ParamsDependency))
        sections = tuple(key for dep in stage.deps if isinstance(dep, ParamsDependency) for key in dep.params)
        outs = tuple(Path(out.def_path) for out in stage.outs)
    return StageSpec(name=name, deps=deps, outs=outs, param_sections=sections)


def _select(params: dict, keys: tuple[str, ...]) -> dict:
    """The params dvc.yaml lists for a stage: whole sections (`train`) or dotted keys (`train.lr`), nested."""
    selected: dict = {}
    for key in keys:
        *sections, leaf = key.split(".")
        source, target = params, selected
        for section in sections:
            source, target = source[section], target.setdefault(section, {})
        target[leaf] = source[leaf]
    return selected


@contextmanager
def tracked_stage(name: str, params: Params) -> Iterator[tracking.StageRun]:
    """An MLflow run for this stage execution, recording its params and dvc.yaml deps and outs."""
    spec = stage_spec(name)
    all_params = params.model_dump(mode="json")
    with tracking.stage_run(
        name,
        repo_root=workspace(),
        stage_params=_select(all_params, spec.param_sections),
        all_params=all_params,
        deps=spec.deps,
        outs=spec.outs,
        tables=[out for out in spec.outs if out.suffix == ".parquet"],
    ) as run:
        yield run


def run_stage(flow: Flow, *args: str) -> None:
    """Validate params.yaml, then run the stage's flow (with `args` after the params); user errors end in
    one line and an exit code."""
    try:
        params = load_params(workspace() / PARAMS_FILE)
    except ParamsError as error:
        sys.exit(f"{flow.name}: {error}")
    state = flow(params, *args, return_state=True)
    if state.is_failed():
        try:
            state.result()
        except (ParamsError, DatasetError) as error:
            sys.exit(f"{flow.name}: {error}")
        except BaseException as error:  # the traceback is already in Prefect's log above
            sys.exit(f"{flow.name}: failed: {error.__class__.__name__}: {error}")
