"""Every data path of the pipeline is declared once, in dvc.yaml's `vars` mapping `paths`: the stages name their
data deps and outs `${paths.NAME}` there, and the stage modules look the same names up when they run
(`pipeline._stage.stage_paths`). A path spelled out in a stage module, or in a stage of dvc.yaml, would go on
naming the old file after a rename."""

import ast
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from types import SimpleNamespace

import pytest
from dvc.dvcfile import PROJECT_FILE, load_file
from dvc.parsing.interpolate import get_matches
from dvc.repo import Repo
from pipeline import _stage, pretrain, tasks, train
from pipeline._stage import (
    PATHS_VAR,
    StageSpec,
    UndeclaredPathError,
    run_stage,
    stage_paths,
    stage_spec,
    tracked_stage,
)

from egsynth.parsing import INDEX_NAME
from tests._repo import REPO

DATA_FOLDERS = frozenset({"data", "models", "reports", "plots"})
"""The top-level folders the pipeline's data lives in (the repo's .gitignore and DVC's outs)."""

STAGE_MODULES = sorted((REPO / "pipeline").glob("*.py"))


# ---------------------------------------------------------------------------------------------
# what the stage modules spell


def docstrings(tree: ast.AST) -> set[ast.AST]:
    """The docstring nodes of a module and its classes and functions: prose, which may name the files."""
    owners = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    return {
        node.body[0].value
        for node in ast.walk(tree)
        if isinstance(node, owners)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
        and isinstance(node.body[0].value.value, str)
    }


def is_data_path(text: str) -> bool:
    """Whether `text` names one of the data folders or a path inside one (`models`, `data/eval`, `reports/`)."""
    parts = PurePosixPath(text).parts
    return bool(parts) and parts[0] in DATA_FOLDERS


def hard_coded_paths(source: str) -> list[tuple[int, str]]:
    """(line, text) of every string in `source`, f-string parts included and docstrings not, naming a data path."""
    tree = ast.parse(source)
    prose = docstrings(tree)
    return sorted(
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node not in prose
        and is_data_path(node.value)
    )


def looked_up_names(source: str) -> set[str]:
    """The names `source` looks up as `paths["NAME"]`, the stage modules' name for `stage_paths()`."""
    return {
        node.slice.value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Subscript)
        and isinstance(node.value, ast.Name)
        and node.value.id == "paths"
        and isinstance(node.slice, ast.Constant)
        and isinstance(node.slice.value, str)
    }


def test_no_stage_module_spells_out_a_data_path():
    found = [
        f"{module.relative_to(REPO)}:{line}: {text!r}"
        for module in STAGE_MODULES
        for line, text in hard_coded_paths(module.read_text())
    ]
    assert not found, (
        "stage modules name data paths that dvc.yaml declares; look them up by name at run time with "
        "`pipeline._stage.stage_paths()` (a file inside a declared directory: that directory / its name):\n"
        + "\n".join(found)
    )


def test_the_scan_finds_a_data_path_in_every_spelling_and_leaves_prose_and_other_words_alone():
    source = '''"""Writes `data/eval/` and `models/VARIANT/generator.pt`."""
from pathlib import Path

CASES = Path("data/eval")


def write(variant):
    """Into `reports/metrics`."""
    out = Path("models") / variant
    name = f"plots/train/{variant}.csv"
    return out, name, "reports/", "database", "plots.csv", "metadata/x", Path("data", "raw")
'''
    assert hard_coded_paths(source) == [
        (4, "data/eval"),
        (9, "models"),
        (10, "plots/train/"),
        (11, "data"),
        (11, "reports/"),
    ]


def test_the_stage_modules_look_up_only_names_dvc_yaml_declares(monkeypatch):
    monkeypatch.chdir(REPO)
    declared = set(stage_paths())
    used = {name for module in STAGE_MODULES for name in looked_up_names(module.read_text())}
    assert {"scenes_table", "report_md"} <= used, "the scan finds the stages' lookups"
    assert used <= declared, f"looked up, but not under dvc.yaml's `{PATHS_VAR}`: {sorted(used - declared)}"


def test_the_stage_modules_look_their_paths_up_when_they_run_not_when_imported():
    at_import = [
        f"{module.relative_to(REPO)}:{node.lineno}"
        for module in STAGE_MODULES
        for statement in ast.parse(module.read_text()).body
        if not isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
        for node in ast.walk(statement)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == stage_paths.__name__
    ]
    assert not at_import, f"stage_paths() called at import, in the directory of the import: {at_import}"


def test_the_readers_of_the_parsed_index_name_the_file_the_parse_stage_writes():
    assert pretrain.PARSED_INDEX == train.PARSED_INDEX == tasks.PARSED_INDEX == INDEX_NAME


# ---------------------------------------------------------------------------------------------
# what dvc.yaml spells


def raw_entries(contents: dict) -> list[str]:
    """Every dep, out, metric and plot path as written in the stages of a dvc.yaml (`foreach` templates as they
    stand), and the top-level plots' ids."""
    entries = []
    for stage in contents.get("stages", {}).values():
        body = stage.get("do", stage)
        for key in ("deps", "outs", "metrics", "plots"):
            entries += [next(iter(entry)) if isinstance(entry, dict) else entry for entry in body.get(key, [])]
    entries += [next(iter(entry)) if isinstance(entry, dict) else entry for entry in contents.get("plots", [])]
    return entries


def raw_dvc_yaml() -> dict:
    with Repo(str(REPO)) as repo:
        return load_file(repo, PROJECT_FILE).contents


def test_every_named_path_is_a_dep_or_out_of_some_stage(monkeypatch):
    monkeypatch.chdir(REPO)
    used = {
        match["inner"].removeprefix(f"{PATHS_VAR}.")
        for entry in raw_entries(raw_dvc_yaml())
        for match in get_matches(entry)
        if match["inner"].startswith(f"{PATHS_VAR}.")
    }
    unused = set(stage_paths()) - used
    assert not unused, f"dvc.yaml names paths under `{PATHS_VAR}` that no stage reads or writes: {sorted(unused)}"


def test_no_stage_in_dvc_yaml_spells_out_a_data_path():
    entries = raw_entries(raw_dvc_yaml())
    assert "pipeline/report.py" in entries, "the scan finds the stages' entries"
    spelled = [entry for entry in entries if is_data_path(entry)]
    assert not spelled, (
        f"dvc.yaml: name these under `vars: {PATHS_VAR}` and use them as ${{{PATHS_VAR}.NAME}}: {spelled}"
    )


# ---------------------------------------------------------------------------------------------
# the lookup


DVC_YAML = """vars:
  - paths:
      table: {table}
      curves: plots/curves
stages:
  make:
    cmd: python make.py
    outs:
      - ${{paths.table}}
  draw:
    foreach: [a, b]
    do:
      cmd: python draw.py ${{item}}
      deps:
        - ${{paths.table}}
      outs:
        - ${{paths.curves}}/${{item}}.csv
"""


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    Repo.init(str(tmp_path), no_scm=True).close()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_lookup_is_what_dvc_resolves_in_the_stages_read_from_the_workspace_at_each_call(workspace):
    (workspace / "dvc.yaml").write_text(DVC_YAML.format(table="data/table.parquet"))
    paths = stage_paths()
    assert dict(paths) == {"table": Path("data/table.parquet"), "curves": Path("plots/curves")}
    assert stage_spec("make").outs == (paths["table"],)
    assert stage_spec("draw@b").deps == (paths["table"],)
    assert stage_spec("draw@b").outs == (paths["curves"] / "b.csv",)

    (workspace / "dvc.yaml").write_text(DVC_YAML.format(table="data/renamed.parquet"))
    assert stage_paths()["table"] == Path("data/renamed.parquet") == stage_spec("make").outs[0]


def test_the_lookup_is_read_only_and_an_undeclared_name_raises_naming_dvc_yaml(workspace):
    (workspace / "dvc.yaml").write_text(DVC_YAML.format(table="data/table.parquet"))
    paths = stage_paths()
    with pytest.raises(TypeError):
        paths["table"] = Path("elsewhere")  # type: ignore[index]
    assert "tabel" not in paths and paths.get("tabel") is None
    with pytest.raises(UndeclaredPathError) as error:
        _ = paths["tabel"]
    assert str(error.value).startswith("dvc.yaml: `vars` has no path 'tabel' under `paths`")


def test_a_dvc_yaml_without_the_paths_mapping_is_an_error_naming_it(workspace):
    (workspace / "dvc.yaml").write_text("stages:\n  make:\n    cmd: python make.py\n    outs:\n      - out.txt\n")
    with pytest.raises(UndeclaredPathError, match=r"^dvc\.yaml: `vars` has no mapping `paths`"):
        stage_paths()


FOREACH_DVC_YAML = """vars:
  - paths:
      table: {table}
stages:
  draw:
    foreach: [a, b]
    do:
      cmd: python draw.py ${{item}}
      params:
        - filter
      deps:
        - ${{paths.table}}
      outs:
        - plots/${{item}}.csv
"""


class StandInFlow:
    """What `run_stage` asks of a stage's Prefect flow: its name, and a call that runs `body` and returns the
    run's state."""

    def __init__(self, name: str, body: Callable[..., None]) -> None:
        self.name, self.body = name, body

    def __call__(self, params, *args: str, return_state: bool) -> SimpleNamespace:
        self.body(params, *args)
        return SimpleNamespace(is_failed=lambda: False)


@pytest.fixture
def foreach_workspace(workspace):
    (workspace / "dvc.yaml").write_text(FOREACH_DVC_YAML.format(table="data/table.parquet"))
    (workspace / "params.yaml").write_text((REPO / "params.yaml").read_text())
    return workspace


def test_a_stage_run_opens_the_dvc_repo_once_and_its_lookups_see_that_read_until_it_ends(
    foreach_workspace, monkeypatch
):
    opened = []

    def counted_repo(root: str) -> Repo:
        opened.append(root)
        return Repo(root)

    @contextmanager
    def stage_run(name, **kwargs):
        seen.update(recorded_deps=kwargs["deps"])
        yield None

    def draw(params, item):
        with tracked_stage(f"draw@{item}", params):
            seen.update(paths=stage_paths(), spec=stage_spec(f"draw@{item}"))

    monkeypatch.setattr(_stage, "Repo", counted_repo)
    monkeypatch.setattr(_stage, "stage_run", stage_run)
    seen = {}
    run_stage(StandInFlow("draw", draw), "b")
    assert opened == [str(foreach_workspace)]

    assert dict(seen["paths"]) == dict(stage_paths()) == {"table": Path("data/table.parquet")}
    expected = StageSpec(
        name="draw@b", deps=(Path("data/table.parquet"),), outs=(Path("plots/b.csv"),), param_sections=("filter",)
    )
    assert seen["spec"] == stage_spec("draw@b") == expected
    assert seen["recorded_deps"] == expected.deps
    assert len(opened) == 3, "outside a stage run, each lookup reads dvc.yaml"
    (foreach_workspace / "dvc.yaml").write_text(FOREACH_DVC_YAML.format(table="data/renamed.parquet"))
    assert stage_paths()["table"] == Path("data/renamed.parquet")


@pytest.mark.parametrize(("args", "stage"), [(("c",), "draw@c"), ((), "draw")])
def test_a_stage_run_of_an_entry_dvc_yaml_does_not_have_ends_in_one_line_naming_it(foreach_workspace, args, stage):
    """An item the foreach does not list, or the foreach group without an item."""
    with pytest.raises(SystemExit) as exit:
        run_stage(StandInFlow("draw", lambda *_: None), *args)
    assert exit.value.code == f"draw: dvc.yaml: Stage '{stage}' not found inside 'dvc.yaml' file"
