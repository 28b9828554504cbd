"""The MLflow store of a repository and the tag keys of its runs, shared by `writer` (which records stage runs) and
`queries` (which reads them back).

The store defaults to `sqlite:///<repo>/mlflow.db` (`MLFLOW_TRACKING_URI` overrides), so the library needs no
tracking server. A stage run names each dep and out by a tag `egsynth.dep/<path>` / `egsynth.out/<path>`
(`dep_tag`, `out_tag`), `<path>` relative to the repo root in posix style, value the md5 DVC writes to dvc.lock;
search them with backticks: tags.`egsynth.out/models/full/generator.pt` = '...'.
"""

from __future__ import annotations

import logging
import os
import posixpath
from pathlib import Path
from typing import TYPE_CHECKING

from egsynth.provenance import relative_path

if TYPE_CHECKING:
    from mlflow import MlflowClient

EXPERIMENT_ENV = "EGSYNTH_MLFLOW_EXPERIMENT"
DEFAULT_EXPERIMENT = "egsynth"
STORE_FILE = "mlflow.db"

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

_NOISY_LOGGERS = ("alembic", "mlflow.store.db.utils", "mlflow.store.db.db_types")
_TAG_KEY_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-. /")

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


def mlflow_client(uri: str) -> MlflowClient:
    """A client on the store `uri`; mlflow is imported only here, when a run is written or read."""
    for name in _NOISY_LOGGERS:  # SQLite store creation logs every migration at INFO
        logging.getLogger(name).setLevel(logging.WARNING)
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def sqlite_file(uri: str) -> Path | None:
    """The database file of a `sqlite:///` URI, None for any other store."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///").split("?", 1)[0])


def find_parents(client: MlflowClient, experiment_id: str, fingerprint: str) -> list:
    """The pipeline runs of `fingerprint`, oldest first (concurrent stages may each have created one)."""
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{FINGERPRINT}` = '{fingerprint}' and tags.`{KIND}` = 'pipeline'",
        max_results=50,
    )
    return sorted(runs, key=lambda run: (run.info.start_time, run.info.run_id))
