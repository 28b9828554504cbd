"""The MLflow writer: one run per pipeline stage execution (docs/design.md, "Tracking and lineage").

Every stage execution is one MLflow run, nested under a parent run per pipeline fingerprint
(git commit + params hash). What it records comes from `egsynth.provenance` (the digests, the
commit, the installed versions, the fingerprint); this module only writes it.
A stage run records:

- tags `egsynth.stage`, `egsynth.git_commit`, `egsynth.git_dirty`, `egsynth.fingerprint` (and
  `egsynth.dvc_exp_name`, `egsynth.dvc_exp_baseline_rev` inside `dvc exp run`);
- the environment it ran in: one tag `egsynth.version/<package>` per package of `provenance.VERSIONED_PACKAGES`
  (and `python`), the installed version, so a result can be traced to the stack that produced it
  (`requirements.lock` pins the whole environment; these are the packages that change numbers);
- the stage's params, flattened to `section.key`;
- one tag per dep and per out, key `store.dep_tag(path)` / `store.out_tag(path)`, i.e. `egsynth.dep/<path>`
  and `egsynth.out/<path>` with `<path>` relative to the repo root (or to the experiment's copy of it)
  in posix style, value the md5 DVC writes to dvc.lock;
- the artifact `lineage.json` {stage, commit, dirty, fingerprint, params, deps, outs};
- parquet tables as MLflow datasets (`mlflow.log_input`), digest = their dvc md5.

MLflow holds pointers and digests only; the bytes live in the workspace and DVC's cache.
`queries` reads the runs back. The store is `store.tracking_uri`'s, with artifacts in `<repo>/mlartifacts/`.
Only rank 0 of a torchrun job records anything.
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
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
from egsynth.tracking.store import (
    DEFAULT_EXPERIMENT,
    EXPERIMENT_ENV,
    FINGERPRINT,
    GIT_COMMIT,
    GIT_DIRTY,
    KIND,
    PARAMS_HASH,
    STAGE,
    dep_tag,
    find_parents,
    mlflow_client,
    out_tag,
    sqlite_file,
    tracking_uri,
    version_tag,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient

logger = logging.getLogger(__name__)

ARTIFACTS_DIR = "mlartifacts"  # next to a SQLite store, for experiments this module creates
EXP_ENV_TAGS = {  # env var set by `dvc exp run` -> tag
    "DVC_EXP_NAME": "egsynth.dvc_exp_name",
    "DVC_EXP_BASELINE_REV": "egsynth.dvc_exp_baseline_rev",
}
LINEAGE_ARTIFACT = "lineage.json"

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
# MLflow


def _artifact_location(uri: str) -> str | None:
    """`<dir of the SQLite file>/mlartifacts`, so artifacts never land in a cwd-relative ./mlruns."""
    db_file = sqlite_file(uri)
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


def _parent_run_id(client: MlflowClient, experiment_id: str, fingerprint: str, commit: str, all_params: Mapping) -> str:
    """The parent run of this fingerprint, created on first use; concurrent creators agree on the oldest."""
    from mlflow.entities import Param

    if parents := find_parents(client, experiment_id, fingerprint):
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
    winner = find_parents(client, experiment_id, fingerprint)[0].info.run_id
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
    client = mlflow_client(uri)
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
