import json
import os
import subprocess
import sys

import pytest

from egsynth.io import UnsafeOutput, atomic_path, atomic_paths, check_outputs, torch_load_problem, write_json_atomic


def test_a_failed_write_leaves_the_previous_output_and_no_staging_files(tmp_path):
    target = tmp_path / "table.json"
    write_json_atomic(target, {"version": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as staging:
        staging.write_text("half")
        raise RuntimeError("crash mid-write")
    assert json.loads(target.read_text()) == {"version": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.json"]


def test_a_directory_output_replaces_the_old_one_whole(tmp_path):
    target = tmp_path / "scenes"
    (target / "old").mkdir(parents=True)
    with atomic_path(target, directory=True) as staging:
        (staging / "new.txt").write_text("x")
        assert not (target / "new.txt").exists(), "nothing visible before success"
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scenes"]


def test_finishing_without_writing_names_the_output(tmp_path):
    with pytest.raises(FileNotFoundError, match="out.json: the stage finished without writing it"):
        with atomic_path(tmp_path / "out.json"):
            pass


def test_staging_folders_of_a_dead_writer_are_removed_and_a_live_writers_kept(tmp_path):
    dead_pid = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = [tmp_path / f".figures.{dead_pid.stdout.strip()}-a1.tmp", tmp_path / ".report.html.b2.tmp"]
    for folder in stale:
        folder.mkdir()
        (folder / "half.png").write_bytes(b"half")
    live = tmp_path / f".figures.{os.getpid()}-c3.tmp"
    live.mkdir()
    with atomic_path(tmp_path / "figures", directory=True) as staging:
        (staging / "fig.png").write_bytes(b"png")
    write_json_atomic(tmp_path / "report.html", {})
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, "figures", "report.html"])


def test_outputs_written_together_are_all_replaced_or_none(tmp_path):
    old = {name: tmp_path / name for name in ("a.txt", "b.txt")}
    for path in old.values():
        path.write_text("old")
    with pytest.raises(RuntimeError), atomic_paths(list(old.values())) as (a, b):
        a.write_text("new")
        raise RuntimeError("killed between the two")
    assert {path.read_text() for path in old.values()} == {"old"}
    with atomic_paths([*old.values(), tmp_path / "new" / "c.txt"]) as staged:
        for path in staged:
            path.write_text("new")
    assert {p.read_text() for p in tmp_path.rglob("*.txt")} == {"new"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt", "new"]


def test_an_output_over_an_input_or_a_dvc_out_is_refused_naming_both(tmp_path):
    source = tmp_path / "in.png"
    source.write_bytes(b"input")
    (tmp_path / "sub").mkdir()
    with pytest.raises(UnsafeOutput, match=f"{tmp_path}/sub/../in.png: is the input {source}"):
        check_outputs([tmp_path / "sub" / ".." / "in.png"], [source])
    (tmp_path / ".dvc").mkdir()
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n  s:\n    cmd: x\n    outs:\n    - models\n    metrics:\n    - m.json:\n        cache: false\n"
    )
    for output, out in (
        (tmp_path / "models" / "g.pt", tmp_path / "models"),
        (tmp_path / "m.json", tmp_path / "m.json"),
    ):
        with pytest.raises(UnsafeOutput, match=f"DVC tracks {out}"):
            check_outputs([output], [])
    check_outputs([tmp_path / "elsewhere.png"], [source])


def test_an_out_dvc_yaml_names_through_its_vars_is_refused_before_it_ever_ran(tmp_path):
    """The pipeline names its outs `${paths.NAME}` (dvc.yaml's `vars`): DVC's templating resolves them."""
    (tmp_path / ".dvc").mkdir()
    (tmp_path / "dvc.yaml").write_text(
        "vars:\n  - paths:\n      table: data/table.parquet\n      curves: plots\n"
        "stages:\n  s:\n    cmd: x\n    outs:\n    - ${paths.table}\n"
        "  t:\n    foreach: [a]\n    do:\n      cmd: y\n      plots:\n      - ${paths.curves}/${item}.csv\n"
    )
    with pytest.raises(UnsafeOutput, match=f"DVC tracks {tmp_path / 'data' / 'table.parquet'}"):
        check_outputs([tmp_path / "data" / "table.parquet"], [])
    check_outputs([tmp_path / "data" / "other.parquet"], [])


def test_a_torch_load_refusal_never_advises_the_unsafe_load():
    refusal = RuntimeError("Weights only load failed. Re-running `torch.load` with `weights_only` set to `False` ...")
    assert "False" not in torch_load_problem(refusal) and "never unpickled" in torch_load_problem(refusal)
