"""A stage sees only the params its dvc.yaml entry declares (`pipeline._stage.declared_params`): DVC hashes
exactly those into dvc.lock, so a read of any other key would leave a stale result when that key changes."""

import ast
import importlib
import inspect
import textwrap
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import reduce
from pathlib import Path

import pytest
from dvc.repo import Repo
from pipeline import _stage
from pipeline._stage import UndeclaredParamError, declared_params, stage_spec, tracked_stage
from prefect import flow
from prefect.utilities.collections import visit_collection
from pydantic import BaseModel

from egsynth.config import ManifestConfig, ModelConfig, Params, ParamsError, TrainConfig, load_params

REPO = Path(__file__).resolve().parents[1]

# Off every default, so a value read through the restriction is the file's, not a filled-in default.
PARAMS = Params(
    manifest=ManifestConfig(image_size=96, patch_size=40, enlarged_patch_size=56),
    model=ModelConfig(num_scales=2, attention_maps=(4, 4, 4), seed=7, backbone="imagenet"),
    train=TrainConfig(lr=0.5, phase1_epochs=3, phase2_epochs=2),
    variants=("gap", "no_fm"),
)


def test_reading_an_undeclared_section_raises_naming_the_stage_the_key_and_dvc_yaml():
    view = declared_params(PARAMS, "report", ["variants"])
    with pytest.raises(UndeclaredParamError) as error:
        _ = view.manifest
    message = str(error.value)
    assert "'report'" in message and "'manifest'" in message
    assert "under the stage's `params:` in dvc.yaml" in message


def test_reading_an_undeclared_key_of_a_declared_one_raises_with_its_dotted_key():
    view = declared_params(PARAMS, "evaluate@full", ["model.backbone", "model.seed"])
    with pytest.raises(UndeclaredParamError, match=r"stage 'evaluate@full' reads params key 'model\.ngf'"):
        _ = view.model.ngf
    with pytest.raises(UndeclaredParamError, match=r"'model\.attention_label_init'"):  # through a property
        _ = view.model.attention_label_inits
    assert not hasattr(view.model, "ngff")  # a typo stays an AttributeError, not a declaration to add


def test_an_undeclared_read_is_not_swallowed_by_a_default():
    view = declared_params(PARAMS, "report", ["variants"])
    with pytest.raises(UndeclaredParamError):
        getattr(view, "train", None)


def test_a_declared_section_reads_whole():
    view = declared_params(PARAMS, "train@full", ["model", "train", "manifest"])
    assert view.train is PARAMS.train and view.model is PARAMS.model
    assert view.train.model_dump() == PARAMS.train.model_dump()
    assert view.model.attention_label_inits == [0.0, 0.0, 0.0]
    with pytest.raises(UndeclaredParamError, match="'variants'"):
        _ = view.variants


def test_dotted_keys_read_through_nested_in_their_section_and_nothing_else():
    keys = ["manifest", "train.phase1_epochs", "train.phase2_epochs", "variants"]
    view = declared_params(PARAMS, "manifest", keys)
    assert (view.train.phase1_epochs, view.train.phase2_epochs) == (3, 2)
    assert view.manifest.image_size == 96 and view.variants == ("gap", "no_fm")
    assert isinstance(view, Params) and isinstance(view.train, TrainConfig)
    assert view.model_dump(mode="json") == {
        "manifest": PARAMS.manifest.model_dump(mode="json"),
        "train": {"phase1_epochs": 3, "phase2_epochs": 2},
        "variants": ["gap", "no_fm"],
    }
    for key in ("lr", "seed", "warmup_epochs"):
        with pytest.raises(UndeclaredParamError, match=rf"'train\.{key}'"):
            getattr(view.train, key)


def test_a_section_declared_whole_and_by_a_key_is_whole():
    view = declared_params(PARAMS, "train@full", ["train.lr", "train"])
    assert view.train is PARAMS.train


def test_a_declared_key_the_params_do_not_have_is_a_dvc_yaml_error():
    with pytest.raises(ParamsError, match=r"dvc\.yaml: stage 'report' declares params key 'train\.lrr'"):
        declared_params(PARAMS, "report", ["train.lrr"])
    with pytest.raises(ParamsError, match=r"'variants', which is not a section"):
        declared_params(PARAMS, "report", ["variants.full"])


@flow(name="probe")
def probe_flow(params: Params, variant: str) -> None:
    """Never run: the tests below ask Prefect to validate and record its parameters."""


def test_prefect_passes_the_view_through_and_records_only_the_declared_params():
    view = declared_params(PARAMS, "evaluate@full", ["evaluate", "model.seed", "manifest.image_size"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        validated = probe_flow.validate_parameters({"params": view, "variant": "full"})
        assert validated["params"] is view
        assert visit_collection(validated, lambda value: value, return_data=True)["params"] is view
        recorded = probe_flow.serialize_parameters(validated)
    assert recorded["params"] == {
        "manifest": {"image_size": 96},
        "model": {"seed": 7},
        "evaluate": PARAMS.evaluate.model_dump(mode="json"),
    }


def test_tracked_stage_records_the_declared_params_and_all_params(monkeypatch):
    recorded = {}

    @contextmanager
    def stage_run(name, **kwargs):
        recorded.update(kwargs, name=name)
        yield None

    monkeypatch.chdir(REPO)
    monkeypatch.setattr(_stage, "stage_run", stage_run)
    with tracked_stage("report", declared_params(PARAMS, "report", ["variants", "manifest.image_size"])):
        pass
    assert recorded["stage_params"] == {"manifest": {"image_size": 96}, "variants": ["gap", "no_fm"]}
    assert recorded["all_params"] == PARAMS.model_dump(mode="json")
    with pytest.raises(ValueError, match="given the params of stage 'filter'"):
        with tracked_stage("report", declared_params(PARAMS, "filter", ["filter"])):
            pass


# ---------------------------------------------------------------------------------------------------------
# Every stage of the real dvc.yaml against its real restriction: each `params.X.Y` its module reads, and what
# a library function reads of a partly declared section the module passes it.


def chain(node: ast.AST) -> tuple[str, tuple[str, ...]] | None:
    """`name.a.b` as ("name", ("a", "b")); None for anything else."""
    attributes = []
    while isinstance(node, ast.Attribute):
        attributes.append(node.attr)
        node = node.value
    return (node.id, tuple(reversed(attributes))) if isinstance(node, ast.Name) else None


def params_reads(tree: ast.AST, roots: dict[str, tuple[str, ...]]) -> Iterator[tuple[tuple[str, ...], ast.AST]]:
    """Each longest attribute chain on a name bound to params (`roots`: name -> its path in params), as the path
    it reads and its node; `size = params.manifest` binds `size` too."""
    roots = dict(roots)
    assignments = [node for node in ast.walk(tree) if isinstance(node, ast.Assign) and len(node.targets) == 1]
    while True:
        aliases = {
            node.targets[0].id: roots[found[0]] + found[1]
            for node in assignments
            if isinstance(node.targets[0], ast.Name)
            and node.targets[0].id not in roots
            and (found := chain(node.value))
            and found[0] in roots
        }
        if not aliases:
            break
        roots |= aliases
    parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
    for node in ast.walk(tree):
        if isinstance(parents.get(node), ast.Attribute) or not (found := chain(node)) or found[0] not in roots:
            continue
        yield roots[found[0]] + found[1], node


def callee(call: ast.Call, namespace: dict) -> Callable | None:
    """The Python function an AST call names in `namespace` (a Prefect flow or task: its function)."""
    found = chain(call.func)
    if found is None or found[0] not in namespace:
        return None
    target = reduce(getattr, found[1], namespace[found[0]])
    target = getattr(target, "fn", target)  # a Prefect flow or task
    target = target.__init__ if inspect.isclass(target) else target
    return inspect.unwrap(target) if inspect.isfunction(target) or inspect.ismethod(target) else None


def read(view: Params, path: tuple[str, ...]):
    """What `view.a.b...` reads along `path` as long as it is inside params (a method or value ends it)."""
    value = view
    for name in path:
        if not isinstance(value, BaseModel):
            break
        value = getattr(value, name)
    return value


def undeclared_reads(view: Params, tree: ast.AST, roots: dict, namespace: dict, where: str, depth: int = 0) -> list:
    """Every read below `tree` that the restriction refuses, as "file:line: message"; a partly declared
    section passed to a function is followed into that function."""
    parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
    problems = []
    for path, node in params_reads(tree, roots):
        try:
            value = read(view, path)
        except UndeclaredParamError as error:
            problems.append(f"{where}:{node.lineno}: {error}")
            continue
        partial = isinstance(value, BaseModel) and set(dict(value)) != set(type(value).model_fields)
        call = parents.get(node)
        if isinstance(call, ast.keyword):
            argument, call = call.arg, parents[call]
        elif isinstance(call, ast.Call) and node in call.args:
            argument = call.args.index(node)
        else:
            continue
        if not partial:
            continue
        function = callee(call, namespace)
        if function is None or depth > 4:
            problems.append(f"{where}:{node.lineno}: cannot follow params.{'.'.join(path)} into this call")
            continue
        names = [name for name in inspect.signature(function).parameters if name != "self"]
        name = argument if isinstance(argument, str) else names[argument]
        lines, first = inspect.getsourcelines(function)
        inner = ast.parse(textwrap.dedent("".join(lines)))
        ast.increment_lineno(inner, first - 1)
        file = Path(inspect.getsourcefile(function))
        shown = str(file.relative_to(REPO) if file.is_relative_to(REPO) else file)
        problems += undeclared_reads(view, inner, {name: path}, function.__globals__, shown, depth + 1)
    return problems


def dvc_stages() -> list[tuple[str, str]]:
    """(stage, its module) for every stage in dvc.yaml, foreach items expanded."""
    with Repo(str(REPO)) as repo:
        return [(stage.addressing, stage.cmd.split()[2]) for stage in repo.index.stages]


@pytest.mark.parametrize(("stage", "module"), dvc_stages())
def test_every_params_read_of_a_stage_is_declared_for_it_in_dvc_yaml(stage, module, monkeypatch):
    monkeypatch.chdir(REPO)
    view = declared_params(load_params(REPO / "params.yaml"), stage, stage_spec(stage).param_sections)
    code = importlib.import_module(module)
    tree = ast.parse(Path(code.__file__).read_text())
    reads = [path for path, _ in params_reads(tree, {"params": ()}) if path and path[0] in Params.model_fields]
    assert reads, f"{module} reads no params through a name `params`: the check would pass on nothing"
    problems = undeclared_reads(view, tree, {"params": ()}, vars(code), str(Path(code.__file__).relative_to(REPO)))
    assert not problems, "\n".join(problems)
