"""What every stage entry point shares: params at the boundary, its dvc.yaml entry, MLflow, Prefect.

A stage's deps, outs and params sections are read from dvc.yaml through DVC's own API, so the
lineage MLflow records is exactly what DVC hashes into dvc.lock, declared once. Its flow sees only the
params dvc.yaml declares for it (`declared_params`): reading any other key raises, since DVC would not
rerun the stage when that key changes. Its data paths are the names of dvc.yaml's `paths` (`stage_paths`),
looked up when it runs, the same values DVC puts into its deps and outs. `run_stage` reads the stage's entry
and `paths` with one open of the workspace's DVC repo (`read_stage_entry`), which the `stage_spec` and
`stage_paths` calls of its run reuse: each open costs a stage process a fraction of a second.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

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
from dvc.dvcfile import PROJECT_FILE, ProjectFile, load_file  # noqa: E402
from dvc.exceptions import DvcException  # noqa: E402
from dvc.parsing import JOIN  # noqa: E402
from dvc.parsing.context import KeyNotInContext  # noqa: E402
from dvc.repo import Repo  # noqa: E402
from prefect import Flow  # noqa: E402
from pydantic import BaseModel  # noqa: E402

from egsynth.config import Params, ParamsError, load_params  # noqa: E402
from egsynth.data.source import DatasetError  # noqa: E402
from egsynth.tracking.writer import StageRun, stage_run  # noqa: E402

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


PATHS_VAR = "paths"
"""The mapping in dvc.yaml's `vars` that names every data path of the pipeline."""

_NO_PATHS_VAR = object()  # what `_paths_var` gives for a dvc.yaml whose `vars` have no `paths`


@dataclass(frozen=True)
class StageEntry:
    """What a stage process reads of dvc.yaml: its stage's spec, and the `paths` var as DVC resolves it, which
    `stage_paths` checks where the stage looks its paths up."""

    spec: StageSpec
    paths_var: Any


def _paths_var(dvcfile: ProjectFile) -> Any:
    """The `paths` var of `dvcfile` as DVC's parser resolves it, `_NO_PATHS_VAR` where it has none."""
    try:
        return dvcfile.resolver.context.select(PATHS_VAR, unwrap=True)
    except KeyNotInContext:
        return _NO_PATHS_VAR


def read_stage_entry(name: str) -> StageEntry:
    """Stage `name` (`train@full` for a foreach item) with its deps, outs (metrics and plots included) and params
    sections, and the `paths` var: one open of the workspace's DVC repo and one parse of its dvc.yaml, whose
    stages DVC resolves as `dvc repro` does (a name dvc.yaml does not have raises DVC's StageNotFound)."""
    with Repo(str(workspace())) as repo:
        dvcfile = load_file(repo, PROJECT_FILE)
        stage = dvcfile.stages[name]
        deps = tuple(Path(dep.def_path) for dep in stage.deps if not isinstance(dep, ParamsDependency))
        sections = tuple(key for dep in stage.deps if isinstance(dep, ParamsDependency) for key in dep.params)
        outs = tuple(Path(out.def_path) for out in stage.outs)
        paths_var = _paths_var(dvcfile)
    return StageEntry(StageSpec(name=name, deps=deps, outs=outs, param_sections=sections), paths_var)


_running: StageEntry | None = None
"""The entry of the stage `run_stage` runs in this process, while its flow runs; None outside `run_stage`."""


def stage_spec(name: str) -> StageSpec:
    """The stage's deps, outs (metrics and plots included) and params sections, from dvc.yaml: the running
    stage's read (`run_stage`), else read now."""
    if _running is not None and _running.spec.name == name:
        return _running.spec
    return read_stage_entry(name).spec


class UndeclaredPathError(KeyError):
    """A stage looked up a path name dvc.yaml's `paths` does not have (a KeyError, as a Mapping raises)."""

    def __str__(self) -> str:
        return str(self.args[0])  # KeyError's own would quote the message


class StagePaths(Mapping[str, Path]):
    """dvc.yaml's `paths`, name -> path relative to the workspace; read-only."""

    def __init__(self, named: Mapping[str, Path]) -> None:
        self._named = MappingProxyType(dict(named))

    def __getitem__(self, name: str) -> Path:
        try:
            return self._named[name]
        except KeyError:
            raise UndeclaredPathError(
                f"{PROJECT_FILE}: `vars` has no path '{name}' under `{PATHS_VAR}`: name it there and use it as "
                f"${{{PATHS_VAR}.{name}}} in the deps or outs of the stage that reads or writes it"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._named)

    def __len__(self) -> int:
        return len(self._named)

    def __repr__(self) -> str:
        return f"StagePaths({dict(self._named)!r})"


def stage_paths() -> StagePaths:
    """The pipeline's data paths by name: the `paths` mapping of the workspace's dvc.yaml `vars`, read through
    DVC's own parser, so each is the value DVC resolves `${paths.NAME}` to in the stages' deps and outs. Read
    in the workspace a stage runs in, never at import: once per run of a stage (`run_stage`), else at each
    call."""
    if _running is not None:
        named = _running.paths_var
    else:
        with Repo(str(workspace())) as repo:
            named = _paths_var(load_file(repo, PROJECT_FILE))
    if named is _NO_PATHS_VAR:
        raise UndeclaredPathError(f"{PROJECT_FILE}: `vars` has no mapping `{PATHS_VAR}` of the data paths")
    if not isinstance(named, dict) or not all(isinstance(value, str) for value in named.values()):
        raise ValueError(f"{PROJECT_FILE}: `vars` `{PATHS_VAR}` is no mapping of names to paths: {named!r}")
    return StagePaths({name: Path(value) for name, value in named.items()})


class UndeclaredParamError(LookupError):
    """A stage read a params key its dvc.yaml entry does not declare. Not an AttributeError, which `hasattr`
    and `getattr(..., default)` would swallow into a silent default."""


class _DeclaredOnly(BaseModel):
    """Mixed into a params section (or the whole `Params`) that a stage sees in part: the fields dvc.yaml does
    not declare for the stage are absent from the instance, so Python falls back to `__getattr__`, which
    raises for them. Properties that derive from an absent field raise the same way."""

    _stage: str  # the dvc.yaml stage, `train@full`
    _path: str  # this object's dotted path in params.yaml and a dot (`model.`), "" for the whole file
    _complete: BaseModel  # the same object with every field, for the record of all params (`tracked_stage`)

    def __getattr__(self, name: str) -> Any:
        if name in type(self).model_fields:
            key = f"{self._path}{name}"
            raise UndeclaredParamError(
                f"stage '{self._stage}' reads params key '{key}', which dvc.yaml does not declare for it: "
                f"declare it under the stage's `params:` in dvc.yaml, so that DVC reruns the stage when it changes"
            )
        return super().__getattr__(name)  # private attributes; anything else is an AttributeError


@cache
def _declared_only(section_class: type[BaseModel]) -> type[BaseModel]:
    """`section_class` with `_DeclaredOnly` mixed in, under its own name (repr and Prefect show `Params`)."""
    return type(section_class.__name__, (_DeclaredOnly, section_class), {"__module__": __name__})


def _restrict(section: BaseModel, keys: list[list[str]], *, stage: str, path: str) -> BaseModel:
    """`section` as far as `keys` (each a list of field names below it) reach; the empty key: all of it."""
    if [] in keys:
        return section
    below: dict[str, list[list[str]]] = {}
    for name, *rest in keys:
        below.setdefault(name, []).append(rest)
    values = {}
    for name, rest in below.items():
        key = f"{path}{name}"
        if name not in type(section).model_fields:
            raise ParamsError(
                f"dvc.yaml: stage '{stage}' declares params key '{key}', which params.yaml has no place for"
            )
        value = getattr(section, name)
        if [] not in rest and not isinstance(value, BaseModel):
            raise ParamsError(f"dvc.yaml: stage '{stage}' declares keys below '{key}', which is not a section")
        values[name] = _restrict(value, rest, stage=stage, path=f"{key}.")
    view = _declared_only(type(section)).model_construct(_fields_set=set(values), **values)
    for name in type(section).model_fields.keys() - values.keys():
        del view.__dict__[name]  # model_construct filled in the default; absent, reading it raises
    view._stage, view._path, view._complete = stage, path, section
    return view


def declared_params(params: Params, stage: str, keys: Iterable[str]) -> Params:
    """What stage `stage` may read of `params`: the sections (`train`) and dotted keys (`train.lr`) its
    dvc.yaml entry lists, nested as in params.yaml.

    The result is still a `Params`, of a subclass whose undeclared fields are absent, because Prefect
    validates and records a flow's parameters against the flows' `params: Params` annotation. An instance
    passes its validation as it is (pydantic does not revalidate instances), while a dict of the declared
    sections would be revalidated into a whole `Params`, the undeclared sections filled in with defaults.
    Prefect walks a model's fields by iterating it and records a parameter by `model_dump`: both see only
    the fields present, so the flow run records exactly the params DVC hashes into dvc.lock. A guard object
    in each undeclared field would go through both as a value of the wrong type, and pydantic warns at
    serializing it.
    """
    return _restrict(params, [key.split(".") for key in keys], stage=stage, path="")


@contextmanager
def tracked_stage(name: str, params: Params) -> Iterator[StageRun]:
    """An MLflow run for this stage execution, recording its dvc.yaml deps and outs, the params it declares
    and, as the pipeline's record, all params."""
    if params._stage != name:
        raise ValueError(f"tracked_stage('{name}') is given the params of stage '{params._stage}'")
    spec = stage_spec(name)
    with stage_run(
        name,
        repo_root=workspace(),
        stage_params=params.model_dump(mode="json"),
        all_params=params._complete.model_dump(mode="json"),
        deps=spec.deps,
        outs=spec.outs,
        tables=[out for out in spec.outs if out.suffix == ".parquet"],
    ) as run:
        yield run


def run_stage(flow: Flow, *args: str) -> None:
    """Validate params.yaml, then run the stage's flow on the params its dvc.yaml entry declares (with `args`
    after them); user errors end in one line and an exit code. The stage is the flow's name, with the first
    argument as its foreach item if there are arguments: `train@full`."""
    global _running
    stage = JOIN.join([flow.name, args[0]]) if args else flow.name
    try:
        all_params = load_params(workspace() / PARAMS_FILE)
        entry = read_stage_entry(stage)
        params = declared_params(all_params, stage, entry.spec.param_sections)
    except ParamsError as error:
        sys.exit(f"{flow.name}: {error}")
    except DvcException as error:  # a stage or foreach item dvc.yaml does not have
        sys.exit(f"{flow.name}: dvc.yaml: {error}")
    _running = entry
    try:
        state = flow(params, *args, return_state=True)
    finally:
        _running = None
    if state.is_failed():
        try:
            state.result()
        except (ParamsError, DatasetError) as error:
            sys.exit(f"{flow.name}: {error}")
        except BaseException as error:  # the traceback is already in Prefect's log above
            sys.exit(f"{flow.name}: failed: {error.__class__.__name__}: {error}")
