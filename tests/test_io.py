import json

import pytest

from egsynth.io import atomic_path, write_json_atomic


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
