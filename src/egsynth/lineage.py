"""The audit of a file's lineage, `egsynth lineage`: where it came from, checked against what is on disk now.

`trace` answers "which data, parser, manifest, pretraining, code commit and params produced this file"
(docs/design.md, "Who uses it and how"). The DAG and the digests come from DVC itself (dvc.yaml and
dvc.lock through `dvc.repo.Repo`), each stage is matched to the latest finished MLflow run whose out tags
equal its dvc.lock md5s, and every dep and out is hashed again on disk with DVC's own hashing
(`provenance.dvc_md5`): a file that changed since is flagged, never trusted. What ran lately and what differs
between two runs are `egsynth.run_history`'s, which shares this module's `LineageError` and helpers.

Every function returns dataclasses; `format_*` turn them into the text the CLI prints. MLflow is read
through `egsynth.tracking.queries` only.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from egsynth import provenance
from egsynth.tracking.queries import StageRecord, StoreError, existing_store, find_stage_runs

WIDTH = 120  # text output wraps long lists of params and metrics at this width (here and in `run_history`)
MD5_WIDTH = 36  # a directory's md5: 32 hex digits and ".dir"


class LineageError(Exception):
    """A request that cannot be answered (bad path, unknown run, no store): the message is one line naming
    the thing and the problem."""


def repository_root(repo_root: Path | None) -> Path:
    """The DVC repository above `repo_root` (default: the working directory), or LineageError."""
    try:
        return provenance.find_repo_root(repo_root).resolve()
    except FileNotFoundError as error:
        raise LineageError(str(error)) from None


def require_store(repo_root: Path) -> None:
    """LineageError, naming the file and the problem, unless the repository's MLflow store can be read."""
    try:
        existing_store(repo_root)
    except (FileNotFoundError, StoreError) as error:
        raise LineageError(str(error)) from None


def local_time(ms: int) -> str:
    """An MLflow timestamp (ms since the epoch) as local date and time, to the second."""
    return datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


def wrapped_pairs(pairs: Mapping[str, Any], width: int) -> list[str]:
    """`key=value` pairs, sorted, wrapped to lines of `width` characters."""
    text = "  ".join(f"{key}={value}" for key, value in sorted(pairs.items()))
    return textwrap.wrap(text, width, break_long_words=False, break_on_hyphens=False)


# ----------------------------------------------------------------------------
# lineage


@dataclass(frozen=True)
class FileCheck:
    """One dep or out of a stage: its md5 in dvc.lock, on disk now, and in the stage's MLflow run."""

    path: str  # relative to the repo root, posix, as dvc.yaml names it
    recorded: str | None  # in dvc.lock; None while the stage has not run
    on_disk: str | None  # None when the path is missing
    in_run: str | None  # what the matched MLflow run recorded; None without one, or when it did not record the path

    @property
    def status(self) -> str:
        if self.recorded is None:
            return "UNLOCKED"
        if self.on_disk is None:
            return "MISSING"
        return "ok" if self.on_disk == self.recorded else "MODIFIED"

    @property
    def problem(self) -> str | None:
        """What is wrong with the bytes on disk, in one line; None when they are the recorded ones."""
        if self.status == "MISSING":
            return f"{self.path}: MISSING: recorded md5 {self.recorded}, not on disk"
        if self.status == "MODIFIED":
            return f"{self.path}: MODIFIED: recorded md5 {self.recorded}, on disk {self.on_disk}"
        return None


@dataclass(frozen=True)
class StageLineage:
    """One stage of the chain: its MLflow run and the check of every dep and out it recorded."""

    stage: str  # DVC's address, `train@full` for an entry of a foreach stage
    run: StageRecord | None  # the latest finished run whose out tags equal the dvc.lock md5s
    deps: tuple[FileCheck, ...]  # params apart: they are the run's
    outs: tuple[FileCheck, ...]
    upstream: tuple[str, ...]  # the stages whose outs it reads

    @property
    def problems(self) -> tuple[str, ...]:
        """One line per break in the chain of trust at this stage; empty when everything matches."""
        if any(check.recorded is None for check in self.outs):
            return (f"{self.stage}: NOT IN dvc.lock: the stage has not run (dvc repro {self.stage})",)
        found = [check.problem for check in (*self.deps, *self.outs) if check.problem]
        if self.run is None:
            found.append(f"{self.stage}: NO MLFLOW RUN recorded the outs with the md5s in dvc.lock")
        else:
            found += [
                f"{check.path}: RUN DIFFERS: dvc.lock has md5 {check.recorded}, {self.stage}'s MLflow run"
                f" {self.run.run_id} recorded {check.in_run or 'no md5'}"
                for check in self.deps
                if check.in_run != check.recorded
            ]
        return tuple(found)


@dataclass(frozen=True)
class Lineage:
    """The chain of stages behind a file, back to the pipeline's first stage."""

    path: str  # the file asked about, relative to the repo root
    out: str  # the DVC out that holds it: the path itself or a directory above it
    stages: tuple[StageLineage, ...]  # its producer first, then upstream in DAG order, the first stage last

    @property
    def problems(self) -> tuple[str, ...]:
        """Every flagged file and unmatched stage, once; the file is trustworthy only when this is empty."""
        return tuple(dict.fromkeys(line for stage in self.stages for line in stage.problems))


def trace(path: Path, repo_root: Path | None = None) -> Lineage:
    """The lineage of `path` (a file or directory out, or a file inside a directory out).

    The repo is the DVC repo above `repo_root` (default: the working directory); a relative `path` is
    taken from the working directory, as a shell would.
    """
    import networkx as nx
    from dvc.exceptions import DvcException, OutputNotFoundError
    from dvc.repo import Repo

    root = repository_root(repo_root)
    target = Path(os.path.abspath(path))
    if not target.is_relative_to(root):
        raise LineageError(
            f"{path}: {'not' if target.exists() else 'does not exist and is not'} inside the repository {root}"
        )
    try:
        with Repo(os.fspath(root)) as repo:
            try:
                out = repo.find_outs_by_path(os.fspath(target), strict=False)[0]
            except OutputNotFoundError:
                if not target.exists():
                    raise LineageError(f"{path}: does not exist, and no stage in dvc.yaml produces it") from None
                raise LineageError(f"{path}: no stage in dvc.yaml produces it (it is no out, nor inside one)") from None
            require_store(root)
            graph = repo.index.graph  # edges point from a stage to the stages whose outs it reads
            chain = graph.subgraph({out.stage, *nx.descendants(graph, out.stage)})
            order = nx.lexicographical_topological_sort(chain, key=lambda stage: stage.addressing)
            digests: dict[str, str | None] = {}  # path -> md5 on disk, each path hashed once
            stages = tuple(_stage_lineage(stage, chain, root, digests) for stage in order)
    except DvcException as error:
        raise LineageError(f"{root / 'dvc.yaml'}: DVC cannot read the pipeline: {error}") from None
    except StoreError as error:
        raise LineageError(str(error)) from None
    return Lineage(path=target.relative_to(root).as_posix(), out=_repo_path(out, root), stages=stages)


def _repo_path(item, root: Path) -> str:
    """A DVC dep's or out's path relative to the repo root, posix: the form MLflow's tags use."""
    return Path(os.path.relpath(item.fs_path, root)).as_posix()


def _disk_md5(path: Path) -> str | None:
    try:
        return provenance.dvc_md5(path)
    except FileNotFoundError:
        return None


def _stage_lineage(stage, chain, root: Path, digests: dict[str, str | None]) -> StageLineage:
    from dvc.dependency import ParamsDependency

    deps = {_repo_path(dep, root): dep.hash_info.value for dep in stage.deps if not isinstance(dep, ParamsDependency)}
    outs = {_repo_path(out, root): out.hash_info.value for out in stage.outs}
    run = matching_run(root, stage.addressing, outs)

    def check(path: str, recorded: str | None, recorded_by_run: Mapping[str, str]) -> FileCheck:
        if path not in digests:
            digests[path] = _disk_md5(root / path)
        return FileCheck(path=path, recorded=recorded, on_disk=digests[path], in_run=recorded_by_run.get(path))

    return StageLineage(
        stage=stage.addressing,
        run=run,
        deps=tuple(check(path, md5, run.deps if run else {}) for path, md5 in deps.items()),
        outs=tuple(check(path, md5, run.outs if run else {}) for path, md5 in outs.items()),
        upstream=tuple(sorted(upstream.addressing for upstream in chain.successors(stage))),
    )


def matching_run(repo_root: Path, stage: str, outs: Mapping[str, str | None]) -> StageRecord | None:
    """The latest finished run of `stage` whose out tags are exactly `outs` (path -> dvc.lock md5)."""
    if not outs or None in outs.values():
        return None
    path, md5 = next(iter(outs.items()))
    candidates = find_stage_runs(repo_root, out=path, md5=md5)  # newest first
    return next((r for r in candidates if r.stage == stage and r.status == "FINISHED" and r.outs == outs), None)


def lineage_json(lineage: Lineage) -> dict:
    """`lineage` as plain data, each stage's and the whole chain's problems included."""
    data = asdict(lineage)
    for stage, entry in zip(lineage.stages, data["stages"], strict=True):
        entry["problems"] = list(stage.problems)
    data["problems"] = list(lineage.problems)
    return data


def format_lineage(lineage: Lineage) -> str:
    """The chain as text: a block per stage, then every problem, or a line saying there is none."""
    producer = lineage.stages[0].stage
    where = "an out" if lineage.path == lineage.out else f"inside {lineage.out}, an out"
    lines = [
        f"{lineage.path}: {where} of stage {producer}",
        f"chain, the producer first: {', '.join(stage.stage for stage in lineage.stages)}",
    ]
    for stage in lineage.stages:
        lines += ["", *_format_stage(stage)]
    lines.append("")
    if lineage.problems:
        lines += [f"FLAGGED ({len(lineage.problems)}), not to be trusted:", *(f"  {p}" for p in lineage.problems)]
    else:
        files = {check.path for stage in lineage.stages for check in (*stage.deps, *stage.outs)}
        lines.append(f"ok: all {len(files)} files match dvc.lock, and every stage's MLflow run recorded them")
    return "\n".join(lines)


def _format_stage(stage: StageLineage) -> list[str]:
    indent = " " * 12
    lines = [stage.stage]
    run = stage.run
    if run is None:
        lines.append("  run       NONE: no finished MLflow run recorded these outs")
    else:
        params = wrapped_pairs(run.params, WIDTH - len(indent)) or ["(none)"]
        lines += [
            f"  run       {run.run_id}  {run.status}  {local_time(run.start_time)}  pipeline {run.fingerprint}",
            f"  commit    {run.commit}{'  (dirty: tracked files differed from it)' if run.dirty else ''}",
            f"  params    {params[0]}",
            *(indent + line for line in params[1:]),
        ]
    if stage.upstream:
        lines.append(f"  reads     {', '.join(stage.upstream)}")
    for label, checks in (("deps", stage.deps), ("outs", stage.outs)):
        for i, check in enumerate(checks):
            head = f"  {label:<8}  " if i == 0 else indent
            note = f"  on disk {check.on_disk or 'nothing'}" if check.status in ("MODIFIED", "MISSING") else ""
            lines.append(f"{head}{check.status:<9} {check.recorded or '-':<{MD5_WIDTH}}  {check.path}{note}")
    return lines
