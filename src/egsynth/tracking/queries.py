"""Queries that read the stage runs `writer` recorded back from MLflow, for `egsynth lineage`, `runs` and `compare`.

A stage run comes back as a `StageRecord` (its tags, params, dep and out md5s, metrics), a pipeline run (one
fingerprint: git commit + params hash) as a `PipelineRecord` with its stage runs. Reading never creates or
changes a store: `existing_store` refuses, reading only, a file MLflow would write to on opening, and every
error of MLflow or the database while reading ends as one `StoreError` line naming the store.
"""

from __future__ import annotations

import os
import sqlite3
import urllib.parse
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from egsynth.provenance import split_exp_workspace
from egsynth.tracking.store import (
    DEFAULT_EXPERIMENT,
    DEP_PREFIX,
    EXPERIMENT_ENV,
    FINGERPRINT,
    GIT_COMMIT,
    GIT_DIRTY,
    KIND,
    OUT_PREFIX,
    STAGE,
    find_parents,
    mlflow_client,
    out_tag,
    sqlite_file,
    tracking_uri,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient


@dataclass(frozen=True)
class StageRecord:
    """What one stage run recorded, read back from MLflow."""

    run_id: str
    stage: str
    status: str  # FINISHED, FAILED, KILLED, RUNNING
    start_time: int  # ms since the epoch
    commit: str
    dirty: bool
    fingerprint: str
    params: dict[str, str]  # flattened, as logged
    deps: dict[str, str]  # relative posix path -> dvc md5
    outs: dict[str, str]
    metrics: dict[str, float] = field(default_factory=dict)  # the last value logged per key
    parent_run_id: str | None = None  # the pipeline run it is nested under


@dataclass(frozen=True)
class PipelineRecord:
    """A pipeline run (one fingerprint: git commit + params hash) and the stage runs nested under it."""

    run_id: str
    fingerprint: str
    commit: str
    start_time: int  # ms since the epoch: when a stage first ran with this commit and these params
    params: dict[str, str]  # all of params.yaml, flattened, as logged
    stages: tuple[StageRecord, ...]  # newest first


class StoreError(ValueError):
    """An MLflow store the audit commands cannot read (empty, corrupt, truncated, foreign); one line naming it."""


SQLITE_HEADER = b"SQLite format 3\x00"
MLFLOW_TABLES = ("alembic_version", "experiments", "metrics", "params", "runs", "tags")


def _check_sqlite_store(db_file: Path) -> None:
    """Refuse, reading only, a file MLflow would write to on opening or fail on: MLflow gives a file without
    its tables a fresh schema (a 0-byte file too) and a store without its default experiment a new one."""
    size = db_file.stat().st_size
    if size == 0:
        raise StoreError(f"{db_file}: empty (0 bytes), not an MLflow store")
    with db_file.open("rb") as file:
        header = file.read(100)
    if not header.startswith(SQLITE_HEADER) or len(header) < 100:
        raise StoreError(f"{db_file}: not an SQLite database, so not an MLflow store")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages, counter, valid_for = (int.from_bytes(header[a : a + 4], "big") for a in (28, 24, 92))
    if counter == valid_for and size < page_size * pages:  # the page count is valid (SQLite >= 3.7.0 wrote it)
        raise StoreError(f"{db_file}: truncated ({size} bytes of the {page_size * pages} its header declares)")
    uri = f"file:{urllib.parse.quote(str(db_file.resolve()))}?mode=ro"
    try:
        with closing(sqlite3.connect(uri, uri=True)) as db:
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            missing = [table for table in MLFLOW_TABLES if table not in tables]
            if missing:
                raise StoreError(f"{db_file}: an SQLite database without MLflow's tables ({', '.join(missing)})")
            if not db.execute("SELECT 1 FROM experiments WHERE experiment_id = 0").fetchone():
                raise StoreError(f"{db_file}: an MLflow store without its default experiment (id 0)")
    except sqlite3.DatabaseError as error:
        raise StoreError(f"{db_file}: a corrupt SQLite database ({error})") from None


def existing_store(repo_root: Path) -> str:
    """The tracking URI `stage_run` writes to for `repo_root`, checked for reading only. A SQLite file that
    does not exist raises FileNotFoundError, and one MLflow could not read without writing to it (empty,
    foreign, truncated, corrupt) raises StoreError: reading never creates or changes a store."""
    store_root, _ = split_exp_workspace(Path(repo_root).resolve())
    uri = tracking_uri(store_root)
    db_file = sqlite_file(uri)
    if db_file is not None:
        if not db_file.is_file():
            raise FileNotFoundError(
                f"{db_file}: no MLflow store there (no stage has run yet, or set MLFLOW_TRACKING_URI)"
            )
        _check_sqlite_store(db_file)
    return uri


@contextmanager
def _store_errors(uri: str) -> Iterator[None]:
    """MLflow's and the database's errors while reading `uri` as one StoreError line, not a traceback."""
    from mlflow.exceptions import MlflowException
    from sqlalchemy.exc import SQLAlchemyError

    try:
        yield
    except (MlflowException, SQLAlchemyError, sqlite3.DatabaseError) as error:
        where = sqlite_file(uri) or uri
        raise StoreError(f"{where}: the MLflow store cannot be read ({' '.join(str(error).split())[:300]})") from None


def _experiment(repo_root: Path) -> tuple[MlflowClient, str | None, str]:
    """A client on the (checked) store of `repo_root`, the id of the project's experiment (None before its first
    run) and the store's URI."""
    uri = existing_store(repo_root)
    with _store_errors(uri):
        client = mlflow_client(uri)
        experiment = client.get_experiment_by_name(os.environ.get(EXPERIMENT_ENV) or DEFAULT_EXPERIMENT)
    return client, None if experiment is None else experiment.experiment_id, uri


def find_stage_runs(repo_root: Path, *, out: Path | str, md5: str | None = None) -> list[StageRecord]:
    """Stage runs that recorded `out` (a path relative to the repo root) as an out, with digest
    `md5` if given, newest first; read from the store `stage_run` writes to for `repo_root`."""
    client, experiment_id, uri = _experiment(repo_root)
    if experiment_id is None:
        return []
    key = out_tag(out)
    condition = f"tags.`{key}` = '{md5}'" if md5 else f"tags.`{key}` != ''"
    with _store_errors(uri):
        runs = client.search_runs(
            [experiment_id],
            filter_string=f"{condition} and tags.`{KIND}` = 'stage'",
            order_by=["attributes.start_time DESC"],
        )
    return [_record(run) for run in runs]


def find_run(repo_root: Path, run_id: str) -> StageRecord | PipelineRecord | None:
    """The stage or pipeline run `run_id` of the project's experiment; None when it has no such run."""
    from mlflow.exceptions import MlflowException

    client, experiment_id, uri = _experiment(repo_root)
    try:
        run = client.get_run(run_id)
    except MlflowException:  # unknown, or not even shaped like a run id
        return None
    if run.info.experiment_id != experiment_id or run.info.lifecycle_stage != "active":
        return None
    kind = run.data.tags.get(KIND)
    if kind == "pipeline":
        with _store_errors(uri):
            return _pipeline(client, experiment_id, run)
    return _record(run) if kind == "stage" else None


def find_pipeline(repo_root: Path, fingerprint: str) -> PipelineRecord | None:
    """The pipeline run of `fingerprint` (`<commit[:12]>-<params hash[:12]>`), None when it never ran."""
    from mlflow.exceptions import MlflowException

    client, experiment_id, uri = _experiment(repo_root)
    if experiment_id is None:
        return None
    try:
        parents = find_parents(client, experiment_id, fingerprint)
    except MlflowException:  # not even shaped like a fingerprint: the filter does not parse
        return None
    with _store_errors(uri):
        return _pipeline(client, experiment_id, parents[0]) if parents else None


def recent_pipelines(repo_root: Path, limit: int) -> list[PipelineRecord]:
    """The `limit` pipeline runs that started last, newest first, each with its stage runs."""
    client, experiment_id, uri = _experiment(repo_root)
    if experiment_id is None:
        return []
    with _store_errors(uri):
        runs = client.search_runs(
            [experiment_id],
            filter_string=f"tags.`{KIND}` = 'pipeline'",
            order_by=["attributes.start_time DESC"],
            max_results=limit,
        )
        return [_pipeline(client, experiment_id, run) for run in runs]


def _pipeline(client: MlflowClient, experiment_id: str, run) -> PipelineRecord:
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

    stages = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{run.info.run_id}' and tags.`{KIND}` = 'stage'",
        order_by=["attributes.start_time DESC"],
    )
    return PipelineRecord(
        run_id=run.info.run_id,
        fingerprint=run.data.tags.get(FINGERPRINT, ""),
        commit=run.data.tags.get(GIT_COMMIT, "none"),
        start_time=run.info.start_time,
        params=dict(run.data.params),
        stages=tuple(_record(stage) for stage in stages),
    )


def _record(run) -> StageRecord:
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

    tags = run.data.tags
    return StageRecord(
        run_id=run.info.run_id,
        stage=tags.get(STAGE, ""),
        status=run.info.status,
        start_time=run.info.start_time,
        commit=tags.get(GIT_COMMIT, "none"),
        dirty=tags.get(GIT_DIRTY) == "true",
        fingerprint=tags.get(FINGERPRINT, ""),
        params=dict(run.data.params),
        deps={k.removeprefix(DEP_PREFIX): v for k, v in tags.items() if k.startswith(DEP_PREFIX)},
        outs={k.removeprefix(OUT_PREFIX): v for k, v in tags.items() if k.startswith(OUT_PREFIX)},
        metrics=dict(run.data.metrics),
        parent_run_id=tags.get(MLFLOW_PARENT_RUN_ID),
    )
