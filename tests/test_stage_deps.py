"""Every stage declares, among its deps in dvc.yaml, the code its command runs.

DVC reruns a stage only when a declared dep changes: a module the stage imports but does not declare
can change while DVC keeps serving the result the old code made. The stages and their deps are read
through DVC's own API, so `foreach` stages are checked as DVC expands them (`train@full`).
"""

import ast
import shlex
from pathlib import Path

from dvc.dependency import ParamsDependency
from dvc.repo import Repo

from tests._repo import REPO

PACKAGE_ROOTS = {"egsynth": REPO / "src", "pipeline": REPO}
"""The folder holding each first-party package; imports of any other package (torch, dvc) are not followed."""

PLUMBING = {
    "pipeline/__init__.py": "a docstring only",
    "pipeline/_stage.py": (
        "passes config.py's params and dvc.yaml's paths to the flow, opens its MLflow run, ends errors in one line"
    ),
    "src/egsynth/__init__.py": "a docstring and __version__, which no stage writes into an output",
    "src/egsynth/data/__init__.py": "empty",
    "src/egsynth/evaluation/__init__.py": "a docstring only",
    "src/egsynth/models/__init__.py": "empty",
    "src/egsynth/tracking/__init__.py": "a docstring only",
    "src/egsynth/tracking/writer.py": "the MLflow writer: records each stage run, writes no out",
}
"""Modules a stage may run without declaring them, because they change no byte of its outs. What only these
modules import is not followed (e.g. `provenance.py`, which tracking/writer.py uses for the lineage it records):
a module the stage itself uses is reached through the stage's own imports."""


# ---------------------------------------------------------------------------------------------
# the import closure


def module_file(name: str, roots: dict[str, Path]) -> Path | None:
    """The file of module `name` (a package's `__init__.py`), or None for a name that is no first-party
    module (another package's, or a class or function a `from` import names)."""
    package = name.partition(".")[0]
    if package not in roots:
        return None
    base = roots[package].joinpath(*name.split("."))
    return next((path for path in (base / "__init__.py", base.with_suffix(".py")) if path.is_file()), None)


def module_name(path: Path, roots: dict[str, Path]) -> str:
    root = next(root for package, root in roots.items() if path.is_relative_to(root / package))
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(path: Path, roots: dict[str, Path]) -> set[str]:
    """Every module name an import in `path` may load, at any depth (a function's imports run when it is
    called), relative imports resolved. `from m import n` names both m and m.n: n may be a submodule."""
    name = module_name(path, roots).split(".")
    package = name if path.name == "__init__.py" else name[:-1]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *filter(None, [node.module])])
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def import_closure(module: str, roots: dict[str, Path], *, stop_at: frozenset[Path] = frozenset()) -> set[Path]:
    """The first-party files `python -m module` runs: the module, the `__init__.py` of every package above
    it (importing a.b.c runs a/__init__.py and a/b/__init__.py first), and all they import, transitively.
    A file in `stop_at` is included, but what it imports is not followed."""
    found: set[Path] = set()
    todo = [module]
    while todo:
        parts = todo.pop().split(".")
        for depth in range(1, len(parts) + 1):
            path = module_file(".".join(parts[:depth]), roots)
            if path is None or path in found:
                continue
            found.add(path)
            if path not in stop_at:
                todo.extend(imported_names(path, roots))
    return found


def covered(path: Path, deps: tuple[Path, ...]) -> bool:
    """Whether a dep is `path` itself or a directory holding it."""
    return any(path == dep or dep in path.parents for dep in deps)


# ---------------------------------------------------------------------------------------------
# the stages


def stage_module(stage: str, cmd: str) -> str:
    words = shlex.split(cmd)
    assert words[:2] == ["python", "-m"], f"stage {stage}: cmd {cmd!r} is not `python -m MODULE ...`"
    return words[2]


def dvc_stages() -> list[tuple[str, str, tuple[Path, ...]]]:
    """(name, module its cmd runs, file and directory deps) of every stage, `foreach` stages expanded."""
    with Repo(str(REPO)) as repo:
        return [
            (
                stage.addressing,
                stage_module(stage.addressing, stage.cmd),
                tuple(Path(dep.fs_path) for dep in stage.deps if not isinstance(dep, ParamsDependency)),
            )
            for stage in repo.index.stages
        ]


def test_every_stage_declares_the_modules_its_command_imports():
    plumbing = frozenset(REPO / path for path in PLUMBING)
    stages = dvc_stages()
    assert {"scenes", "report"} <= {name for name, _, _ in stages}
    problems = []
    for name, module, deps in stages:
        runs = import_closure(module, PACKAGE_ROOTS, stop_at=plumbing)
        assert module_file(module, PACKAGE_ROOTS) in runs, f"stage {name}: {module} is no module of this repo"
        missing = sorted(path.relative_to(REPO).as_posix() for path in runs - plumbing if not covered(path, deps))
        if missing:
            problems.append(f"{name} ({module}): {', '.join(missing)}")
    assert not problems, (
        "dvc.yaml: these stages import modules none of their deps covers, so DVC would keep their results "
        "when that code changes (add each as a dep, or to PLUMBING with its reason if it changes no out):\n"
        + "\n".join(problems)
    )


def test_plumbing_lists_existing_files_and_init_files_without_code():
    """An `__init__.py` runs whenever its package is imported: as plumbing it may hold only a docstring and
    `__version__`."""
    for name in PLUMBING:
        path = REPO / name
        assert path.is_file(), f"PLUMBING names {name}, which does not exist"
        if path.name == "__init__.py":
            body = ast.parse(path.read_text()).body
            docstring = body[:1] if body and isinstance(body[0], ast.Expr) else []
            rest = body[len(docstring) :]
            assert all(
                isinstance(node, ast.Assign) and [ast.unparse(t) for t in node.targets] == ["__version__"]
                for node in rest
            ), f"{name} holds code, so it is no plumbing"


def test_import_closure_follows_function_imports_parent_packages_and_relative_imports(tmp_path):
    files = {
        "pkg/__init__.py": '"""The package."""',
        "pkg/main.py": "import os\n\n\ndef run():\n    from .sub.deep import VALUE\n\n    return VALUE\n",
        "pkg/sub/__init__.py": "from .. import shared\n",
        "pkg/sub/deep.py": "VALUE = 1\n",
        "pkg/shared.py": "from pkg.plumbing import record\n",
        "pkg/plumbing.py": "from pkg import only_plumbing\n\n\ndef record():\n    pass\n",
        "pkg/only_plumbing.py": "",
        "pkg/unused.py": "",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    roots = {"pkg": tmp_path}

    runs = import_closure("pkg.main", roots)
    assert runs == {tmp_path / name for name in files if name != "pkg/unused.py"}

    stopped = import_closure("pkg.main", roots, stop_at=frozenset({tmp_path / "pkg/plumbing.py"}))
    assert stopped == runs - {tmp_path / "pkg/only_plumbing.py"}


def test_a_dep_covers_its_own_file_and_what_a_directory_dep_holds(tmp_path):
    deps = (tmp_path / "src/models", tmp_path / "src/losses.py")
    assert covered(tmp_path / "src/models/msca.py", deps)
    assert covered(tmp_path / "src/losses.py", deps)
    assert not covered(tmp_path / "src/models.py", deps)
    assert not covered(tmp_path / "src/losses_extra.py", deps)
