"""Provenance of a stage execution, apart from where it is recorded: the repository and its DVC
experiment copies, the md5 DVC writes to dvc.lock, the git commit, the installed versions of the
packages that change numbers, and the pipeline fingerprint (docs/design.md, "Tracking and lineage").

No MLflow here: `tracking` records these in MLflow runs, `lineage` checks files against them.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import platform
import subprocess
from collections.abc import Mapping
from contextlib import suppress
from pathlib import Path

from egsynth.config import params_hash

# the packages whose installed versions a result records: those that change numbers
# (`requirements.lock` pins the whole environment)
VERSIONED_PACKAGES = ("torch", "torchvision", "dvc", "mlflow", "prefect", "kornia", "torchmetrics", "numpy", "pandas")
# experiment workspaces outside the repo's own: <repo>/.dvc/tmp/exps/tmpXXXX/ (queued runs) and
# <repo>/.dvc/tmp/exps/standalone/tmpXXXX/ (`dvc exp run --temp`, checked with dvc 3.67.1)
_EXPS_PARTS = (".dvc", "tmp", "exps")

# ----------------------------------------------------------------------------
# the repository and its experiment copies


def split_exp_workspace(path: Path) -> tuple[Path, Path]:
    """(<repo>, the copy) for a path inside an experiment's copy of <repo> under <repo>/.dvc/tmp/exps/,
    else (path, path). The copy is the nearest directory holding its own `.dvc/`."""
    parts = path.parts
    n = len(_EXPS_PARTS)
    for i in range(len(parts) - n):
        if parts[i : i + n] == _EXPS_PARTS:
            repo, exps = Path(*parts[:i]), Path(*parts[: i + n])
            copy = _nearest_dvc_root(path)
            if copy is not None and copy != exps and copy.is_relative_to(exps):
                return repo, copy
            return path, path
    return path, path


def _nearest_dvc_root(start: Path) -> Path | None:
    for directory in (start, *start.parents):
        if (directory / ".dvc").is_dir():
            return directory
    return None


def _absolute(path: Path) -> Path:
    """Absolute path with its parent directories resolved, the last component kept (it may be a DVC cache link)."""
    path = Path(os.path.abspath(path))
    return path if path.parent == path else path.parent.resolve() / path.name


def relative_path(path: Path, workspace: Path) -> str:
    """`path` relative to `workspace`, in posix style; ValueError naming both when it lies outside."""
    try:
        return _absolute(path).relative_to(workspace).as_posix()
    except ValueError:
        raise ValueError(f"{path}: not inside the repository {workspace}") from None


def find_repo_root(start: Path | None = None) -> Path:
    """The directory holding `.dvc/`, walking up from `start` (default: cwd).

    Inside a `dvc exp run --temp` workspace (<repo>/.dvc/tmp/exps/<name>/) this is <repo>, the
    original repository, so every run lands in one MLflow store.
    """
    start = _absolute(start if start is not None else Path.cwd())
    root = _nearest_dvc_root(start)
    if root is None:
        raise FileNotFoundError(f"{start}: not inside a DVC repository (no .dvc/ directory above it)")
    repo, _ = split_exp_workspace(root)
    return repo


# ----------------------------------------------------------------------------
# digests, commit, environment, fingerprint


def dvc_md5(path: Path) -> str:
    """The md5 DVC writes to dvc.lock for `path`: a file's md5, or a directory's `<md5>.dir`.

    Both come from dvc-data, DVC's own hashing library. A directory is built like DVC builds an
    output: `.dvcignore` rules of the enclosing DVC repo apply, and `dry_run` keeps the file
    objects out of any store (the odb is an in-memory one; only its staging area is used).
    """
    from dvc_data.hashfile.build import build
    from dvc_data.hashfile.db import HashFileDB
    from dvc_data.hashfile.hash import file_md5
    from dvc_objects.fs import MemoryFileSystem, localfs

    path = _absolute(Path(path))
    if not path.exists():
        raise FileNotFoundError(f"{path}: cannot compute its dvc md5, it does not exist")
    if not path.is_dir():
        return file_md5(os.fspath(path), localfs)

    odb = HashFileDB(MemoryFileSystem(), "/egsynth-dvc-md5", hash_name="md5")
    staging, _, tree = build(odb, os.fspath(path), localfs, "md5", ignore=_dvcignore(path), dry_run=True)
    with suppress(FileNotFoundError):  # the tree's listing stays in the global memory fs otherwise
        staging.fs.rm_file(tree.path)
    digest = tree.hash_info.value
    assert digest and digest.endswith(".dir"), digest
    return digest


def _dvcignore(path: Path):
    """DVC's ignore filter for the repo around `path` (as `dvc repro` applies it), or None outside a repo."""
    root = _nearest_dvc_root(path)
    if root is None:
        return None
    from dvc.ignore import DvcIgnoreFilter
    from dvc_objects.fs import localfs

    return DvcIgnoreFilter(localfs, os.fspath(root))


def git_state(repo_root: Path) -> tuple[str, bool]:
    """(HEAD commit, dirty). Dirty means a tracked file's content differs from HEAD, staged or not;
    untracked files are ignored (like `git describe --dirty`). Without git or without a commit:
    ("none", True).

    Content, not `git status`: status trusts the index's stat cache, and a workspace that a library
    (libgit2, as `dvc exp run --temp` uses) wrote and then changed within the same second can carry
    an entry whose size and mtime match a changed file, so status calls it clean."""

    def git(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["git", "-C", os.fspath(repo_root), *args], input=stdin, capture_output=True, text=True, check=False
        )

    try:
        head = git("rev-parse", "--verify", "--quiet", "HEAD^{commit}")
    except FileNotFoundError:  # no git executable
        return "none", True
    if head.returncode != 0:
        return "none", True
    return head.stdout.strip(), _tracked_content_differs(git)


def _tracked_content_differs(git) -> bool:
    """Whether the index differs from HEAD, or a tracked file's bytes (after git's clean filters)
    differ from the index; gitlinks (submodules) are skipped."""
    if git("diff-index", "--cached", "--quiet", "HEAD").returncode != 0:
        return True
    top = Path(git("rev-parse", "--show-toplevel").stdout.strip())
    listed = git("ls-files", "--stage", "-z", "--full-name", ":/").stdout
    files, blobs = [], []
    for entry in filter(None, listed.split("\0")):
        info, path = entry.split("\t", 1)
        mode, blob, _ = info.split()
        if mode == "160000":
            continue
        file = top / path
        if mode == "120000":
            if not file.is_symlink() or _blob_id(os.readlink(file).encode()) != blob:
                return True
        elif not file.is_file() or file.is_symlink():
            return True
        else:
            files.append(path)
            blobs.append(blob)
    if not files:
        return False
    hashed = git("-C", os.fspath(top), "hash-object", "--stdin-paths", stdin="\n".join(files) + "\n")
    return hashed.returncode != 0 or hashed.stdout.split() != blobs


def _blob_id(content: bytes) -> str:
    """The object id git gives a blob with these bytes (SHA-1 repositories)."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def installed_versions() -> dict[str, str]:
    """Python's version and the installed version of each of `VERSIONED_PACKAGES` ("not installed" if absent)."""
    versions = {"python": platform.python_version()}
    for package in VERSIONED_PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def pipeline_fingerprint(commit: str, params: Mapping) -> str:
    """`<commit[:12]>-<params_hash[:12]>`: one pipeline configuration, the key of a parent run."""
    return f"{commit[:12]}-{params_hash(params)[:12]}"
