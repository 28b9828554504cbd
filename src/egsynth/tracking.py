"""MLflow lineage for pipeline stages: the one module that imports mlflow (docs/design.md, "Tracking and lineage").

Every stage execution is one MLflow run, nested under a parent run per pipeline fingerprint
(git commit + params hash). What it records comes from `egsynth.provenance` (the digests, the
commit, the installed versions, the fingerprint); this module only writes it and reads it back.
A stage run records:

- tags `egsynth.stage`, `egsynth.git_commit`, `egsynth.git_dirty`, `egsynth.fingerprint` (and
  `egsynth.dvc_exp_name`, `egsynth.dvc_exp_baseline_rev` inside `dvc exp run`);
- the environment it ran in: one tag `egsynth.version/<package>` per package of `provenance.VERSIONED_PACKAGES`
  (and `python`), the installed version, so a result can be traced to the stack that produced it
  (`requirements.lock` pins the whole environment; these are the packages that change numbers);
- the stage's params, flattened to `section.key`;
- one tag per dep and per out, key `dep_tag(path)` / `out_tag(path)`, i.e. `egsynth.dep/<path>` and
  `egsynth.out/<path>` with `<path>` relative to the repo root (or to the experiment's copy of it)
  in posix style, value the md5 DVC writes to dvc.lock. Search them with backticks:
  tags.`egsynth.out/models/full/generator.pt` = '...';
- the artifact `lineage.json` {stage, commit, dirty, fingerprint, params, deps, outs};
- parquet tables as MLflow datasets (`mlflow.log_input`), digest = their dvc md5.

MLflow holds pointers and digests only; the bytes live in the workspace and DVC's cache.
The queries at the end read runs back (as `StageRecord` / `PipelineRecord`) for `egsynth.lineage`.
The store defaults to `sqlite:///<repo>/mlflow.db` with artifacts in `<repo>/mlartifacts/`, so
the library needs no tracking server. Only rank 0 of a torchrun job records anything.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import sqlite3
import time
import urllib.parse
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from egsynth.config import flatten_params, params_hash
from egsynth.provenance import (
    dvc_md5,
    git_state,
    installed_versions,
    pipeline_fingerprint,
    relative_path,
    split_exp_workspace,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient

logger = logging.getLogger(__name__)

EXPERIMENT_ENV = "EGSYNTH_MLFLOW_EXPERIMENT"
DEFAULT_EXPERIMENT = "egsynth"
STORE_FILE = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"  # next to a SQLite store, for experiments this module creates

# tag keys
STAGE = "egsynth.stage"
KIND = "egsynth.kind"  # "pipeline" on parent runs, "stage" on stage runs
GIT_COMMIT = "egsynth.git_commit"
GIT_DIRTY = "egsynth.git_dirty"  # "true" / "false"
FINGERPRINT = "egsynth.fingerprint"
PARAMS_HASH = "egsynth.params_hash"
DEP_PREFIX = "egsynth.dep/"
OUT_PREFIX = "egsynth.out/"
VERSION_PREFIX = "egsynth.version/"
EXP_ENV_TAGS = {  # env var set by `dvc exp run` -> tag
    "DVC_EXP_NAME": "egsynth.dvc_exp_name",
    "DVC_EXP_BASELINE_REV": "egsynth.dvc_exp_baseline_rev",
}
LINEAGE_ARTIFACT = "lineage.json"

_NOISY_LOGGERS = ("alembic", "mlflow.store.db.utils", "mlflow.store.db.db_types")
_TAG_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-. /")

# ----------------------------------------------------------------------------
# helpers


def _plain(value: Any) -> Any:
    """Mappings -> dicts with str keys, tuples -> lists, recursively: what canonical JSON needs."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _param_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(_plain(value), default=str)


def _is_rank_zero() -> bool:
    return os.environ.get("RANK", "0") == "0"


# ----------------------------------------------------------------------------
# the store and the tag keys


def tracking_uri(repo_root: Path) -> str:
    """$MLFLOW_TRACKING_URI when set, else an absolute SQLite store `<repo_root>/mlflow.db`."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(Path(repo_root).resolve() / STORE_FILE).as_posix()}"


def version_tag(package: str) -> str:
    """The MLflow tag key of a package's installed version, e.g. `egsynth.version/torch`."""
    return VERSION_PREFIX + package


def _tag_key(prefix: str, path: Path | str, repo_root: Path | None) -> str:
    path = Path(path)
    if repo_root is None:
        rel = path.as_posix()
    else:
        root = Path(repo_root).resolve()
        rel = relative_path(path if path.is_absolute() else root / path, root)
    bad = "".join(sorted(set(rel) - _TAG_KEY_CHARS))
    if bad or posixpath.normpath(rel) != rel or rel == "." or rel.startswith(("/", "../")) or rel == "..":
        raise ValueError(
            f"{path}: cannot be an MLflow tag key {prefix + rel!r}; it must be a normalized relative path"
            f" of letters, digits and _ - . space / (offending characters: {bad!r})"
        )
    return prefix + rel


def dep_tag(path: Path | str, repo_root: Path | None = None) -> str:
    """Tag key of a dep's md5: `egsynth.dep/<posix path relative to the repo root>`.

    With `repo_root`, `path` may be absolute or relative to `repo_root`; without it, `path` must
    already be relative to the repo root (as dvc.yaml writes it). Paths whose key MLflow would
    refuse (characters other than letters, digits, _ - . space /) raise ValueError.
    """
    return _tag_key(DEP_PREFIX, path, repo_root)


def out_tag(path: Path | str, repo_root: Path | None = None) -> str:
    """Tag key of an out's md5: `egsynth.out/<posix path relative to repo_root>`."""
    return _tag_key(OUT_PREFIX, path, repo_root)


# ----------------------------------------------------------------------------
# MLflow


def _client(uri: str) -> MlflowClient:
    for name in _NOISY_LOGGERS:  # SQLite store creation logs every migration at INFO
        logging.getLogger(name).setLevel(logging.WARNING)
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _sqlite_file(uri: str) -> Path | None:
    """The database file of a `sqlite:///` URI, None for any other store."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///").split("?", 1)[0])


def _artifact_location(uri: str) -> str | None:
    """`<dir of the SQLite file>/mlartifacts`, so artifacts never land in a cwd-relative ./mlruns."""
    db_file = _sqlite_file(uri)
    return None if db_file is None else (db_file.resolve().parent / ARTIFACTS_DIR).as_uri()


def _experiment_id(client: MlflowClient, name: str, uri: str) -> str:
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return client.create_experiment(name, artifact_location=_artifact_location(uri))
    except MlflowException:  # created meanwhile by a concurrent stage
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def _find_parents(client: MlflowClient, experiment_id: str, fingerprint: str) -> list:
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{FINGERPRINT}` = '{fingerprint}' and tags.`{KIND}` = 'pipeline'",
        max_results=50,
    )
    return sorted(runs, key=lambda run: (run.info.start_time, run.info.run_id))


def _parent_run_id(client: MlflowClient, experiment_id: str, fingerprint: str, commit: str, all_params: Mapping) -> str:
    """The parent run of this fingerprint, created on first use; concurrent creators agree on the oldest."""
    from mlflow.entities import Param

    if parents := _find_parents(client, experiment_id, fingerprint):
        return parents[0].info.run_id
    run = client.create_run(
        experiment_id,
        run_name=f"pipeline {fingerprint}",
        tags={KIND: "pipeline", FINGERPRINT: fingerprint, GIT_COMMIT: commit, PARAMS_HASH: params_hash(all_params)},
    )
    run_id = run.info.run_id
    client.log_batch(run_id, params=[Param(k, _param_value(v)) for k, v in flatten_params(all_params).items()])
    client.log_dict(run_id, _plain(all_params), "params.json")
    client.set_terminated(run_id, "FINISHED")  # a grouping, not a process: its stages are the runs
    winner = _find_parents(client, experiment_id, fingerprint)[0].info.run_id
    if winner != run_id:
        client.delete_run(run_id)
    return winner


def _log_table(client: MlflowClient, run_id: str, path: Path, name: str, digest: str, source: Path, context: str):
    """Log a parquet table as an MLflow dataset: schema, row count, source path and dvc md5 (no data)."""
    import mlflow.data
    import pandas as pd
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    frame = pd.read_parquet(path)
    with warnings.catch_warnings():  # local paths match two source types; integer columns get a hint: both harmless
        warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted in multiple ways")
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
        dataset = mlflow.data.from_pandas(frame, source=os.fspath(source), name=name, digest=digest)
        # MlflowClient has no log_input; this is what mlflow.log_input builds, without needing an active fluent run
        entity = DatasetInput(dataset=dataset._to_mlflow_entity(), tags=[InputTag(MLFLOW_DATASET_CONTEXT, context)])
    client.log_inputs(run_id, datasets=[entity])


@dataclass
class StageRun:
    """Handle on the stage's MLflow run; `run_id` is None on ranks other than 0 (nothing is logged)."""

    run_id: str | None
    parent_run_id: str | None = None
    fingerprint: str | None = None
    deps: dict[str, str] = field(default_factory=dict)  # the deps' md5s as recorded (rank 0 only, else empty)
    _client: Any = field(default=None, repr=False)

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log scalar metrics (nested mappings flatten to `a.b`) at `step` (default 0)."""
        if self.run_id is None:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(key, float(value), now, step or 0) for key, value in flatten_params(metrics).items()]
        self._client.log_batch(self.run_id, metrics=batch)

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        """Copy a file (a figure, a report) into the run's artifacts."""
        if self.run_id is not None:
            self._client.log_artifact(self.run_id, str(path), artifact_path)

    def log_image(self, image: Any, artifact_file: str) -> None:
        """Store a uint8 [H, W, 3] image (e.g. a sample grid) as a PNG artifact."""
        if self.run_id is not None:
            self._client.log_image(self.run_id, image, artifact_file=artifact_file)

    def log_table(self, table: Any, artifact_file: str) -> None:
        """Store a pandas DataFrame (e.g. per-case scores) as a JSON table artifact."""
        if self.run_id is not None:
            self._client.log_table(self.run_id, data=table, artifact_file=artifact_file)


@contextmanager
def stage_run(
    stage: str,
    *,
    repo_root: Path,  # the repository (or a `dvc exp run --temp` copy of it); the store is the original's
    stage_params: Mapping,  # the params sections this stage reads, e.g. {"train": {...}}
    all_params: Mapping,  # all of params.yaml: with the git commit, it names the parent run
    deps: Sequence[Path],  # hashed on enter
    outs: Sequence[Path],  # hashed on successful exit
    tables: Sequence[Path] = (),  # parquet files (among deps or outs) to log as MLflow datasets
) -> Iterator[StageRun]:
    """One MLflow run for one stage execution; see the module docstring for what it records.

    An exception inside the block ends the run FAILED (KILLED on KeyboardInterrupt) and propagates.
    """
    if not _is_rank_zero():
        yield StageRun(run_id=None)
        return

    store_root, workspace = split_exp_workspace(Path(repo_root).resolve())
    if store_root == workspace:  # given the original root: the stage may still run inside a temp copy of it
        cwd_root, cwd_workspace = split_exp_workspace(Path.cwd().resolve())
        if cwd_root == store_root:
            workspace = cwd_workspace

    def relative(paths: Sequence[Path]) -> dict[str, Path]:  # relative posix path -> absolute path
        absolute = [Path(p) if Path(p).is_absolute() else workspace / p for p in paths]
        return {relative_path(path, workspace): path for path in absolute}

    out_paths, table_paths = relative(outs), relative(tables)
    out_keys = {rel: out_tag(rel) for rel in out_paths}  # refuse an unusable path now, not after the stage ran
    dep_md5 = {rel: dvc_md5(path) for rel, path in relative(deps).items()}
    commit, dirty = git_state(workspace)
    fingerprint = pipeline_fingerprint(commit, all_params)

    uri = tracking_uri(store_root)
    client = _client(uri)
    experiment_id = _experiment_id(client, os.environ.get(EXPERIMENT_ENV) or DEFAULT_EXPERIMENT, uri)
    parent_id = _parent_run_id(client, experiment_id, fingerprint, commit, all_params)

    from mlflow.entities import Param, RunTag
    from mlflow.utils.mlflow_tags import MLFLOW_GIT_COMMIT, MLFLOW_PARENT_RUN_ID

    tags = {
        MLFLOW_PARENT_RUN_ID: parent_id,
        KIND: "stage",
        STAGE: stage,
        GIT_COMMIT: commit,
        GIT_DIRTY: str(dirty).lower(),
        FINGERPRINT: fingerprint,
        PARAMS_HASH: params_hash(all_params),
        **{tag: os.environ[env] for env, tag in EXP_ENV_TAGS.items() if os.environ.get(env)},
        **{dep_tag(rel): md5 for rel, md5 in dep_md5.items()},
        **{version_tag(package): version for package, version in installed_versions().items()},
    }
    if commit != "none":
        tags[MLFLOW_GIT_COMMIT] = commit
    run_id = client.create_run(experiment_id, run_name=stage, tags=tags).info.run_id
    logger.info("stage %s: MLflow run %s (pipeline %s) in %s", stage, run_id, fingerprint, uri)
    run = StageRun(run_id=run_id, parent_run_id=parent_id, fingerprint=fingerprint, deps=dep_md5, _client=client)
    try:
        client.log_batch(run_id, params=[Param(k, _param_value(v)) for k, v in flatten_params(stage_params).items()])
        for rel in sorted(table_paths.keys() & dep_md5.keys()):
            _log_table(client, run_id, table_paths[rel], rel, dep_md5[rel], store_root / rel, "input")

        yield run

        out_md5 = {rel: dvc_md5(path) for rel, path in out_paths.items()}
        client.log_batch(run_id, tags=[RunTag(out_keys[rel], md5) for rel, md5 in out_md5.items()])
        for rel in sorted(table_paths.keys() - dep_md5.keys()):
            md5 = out_md5.get(rel) or dvc_md5(table_paths[rel])
            _log_table(client, run_id, table_paths[rel], rel, md5, store_root / rel, "output")
        lineage = {
            "stage": stage,
            "commit": commit,
            "dirty": dirty,
            "fingerprint": fingerprint,
            "params": _plain(stage_params),
            "deps": dep_md5,
            "outs": out_md5,
        }
        client.log_dict(run_id, lineage, LINEAGE_ARTIFACT)
    except BaseException as error:
        client.set_terminated(run_id, "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")


# ----------------------------------------------------------------------------
# queries, for `egsynth lineage`, `egsynth runs` and `egsynth compare`


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
    db_file = _sqlite_file(uri)
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
        where = _sqlite_file(uri) or uri
        raise StoreError(f"{where}: the MLflow store cannot be read ({' '.join(str(error).split())[:300]})") from None


def _experiment(repo_root: Path) -> tuple[MlflowClient, str | None, str]:
    """A client on the (checked) store of `repo_root`, the id of the project's experiment (None before its first
    run) and the store's URI."""
    uri = existing_store(repo_root)
    with _store_errors(uri):
        client = _client(uri)
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
        parents = _find_parents(client, experiment_id, fingerprint)
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
