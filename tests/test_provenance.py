import importlib.metadata
import sys

import pytest
import yaml

from egsynth import provenance
from egsynth.config import params_hash
from egsynth.provenance import dvc_md5, find_repo_root, git_state, pipeline_fingerprint
from tests._workspace import EXP_COPIES, git_commit_all, git_init, sh, write_scenes

PARAMS = {"filter": {"min_outdoor": 0.5, "seed": 0}, "train": {"lr": 2e-4, "variants": ["full", "gap"]}}

# a stage that writes a text file with CRLF line ends, a nested directory with a binary file, and a
# file that .dvcignore excludes from the directory's hash
WRITER = """\
import os
os.makedirs("out/dir/sub", exist_ok=True)
open("out/file.txt", "wb").write(b"line one\\r\\nline two\\n")
open("out/dir/a.txt", "w").write("a")
open("out/dir/sub/b.bin", "wb").write(bytes(range(256)) * 9)
open("out/dir/scratch.tmp", "w").write("ignored by .dvcignore")
"""


# ----------------------------------------------------------------------------
# digests


def test_dvc_md5_equals_the_md5_dvc_repro_writes_to_dvc_lock(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    sh("git", "init", "-q", cwd=repo)
    sh(sys.executable, "-m", "dvc", "init", "-q", cwd=repo)
    (repo / ".dvcignore").write_text("*.tmp\n")
    (repo / "write.py").write_text(WRITER)
    stage = {"cmd": "python write.py", "deps": ["write.py"], "outs": ["out/file.txt", "out/dir"]}
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"write": stage}}))
    sh(sys.executable, "-m", "dvc", "repro", "-q", cwd=repo)

    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]["write"]
    recorded = {entry["path"]: entry["md5"] for entry in lock["deps"] + lock["outs"]}
    assert recorded["out/dir"].endswith(".dir")
    for path, md5 in recorded.items():
        assert dvc_md5(repo / path) == md5, path


def test_dvc_md5_of_a_directory_changes_with_any_file_and_not_with_ignored_ones(tmp_path):
    (tmp_path / ".dvc").mkdir()
    (tmp_path / ".dvcignore").write_text("*.tmp\n")
    scenes = write_scenes(tmp_path)
    before = dvc_md5(scenes)
    (scenes / "scratch.tmp").write_text("x")
    assert dvc_md5(scenes) == before
    (scenes / "1.png").write_bytes(b"\x89PNG2")
    assert dvc_md5(scenes) != before


def test_dvc_md5_of_a_missing_path_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        dvc_md5(tmp_path / "nope")


def test_params_hash_is_independent_of_key_order():
    shuffled = {"train": {"variants": ["full", "gap"], "lr": 2e-4}, "filter": {"seed": 0, "min_outdoor": 0.5}}
    assert params_hash(PARAMS) == params_hash(shuffled)
    assert params_hash(PARAMS) != params_hash({**PARAMS, "filter": {"min_outdoor": 0.6, "seed": 0}})
    assert pipeline_fingerprint("a" * 40, PARAMS) == pipeline_fingerprint("a" * 40, shuffled)
    assert pipeline_fingerprint("a" * 40, PARAMS) != pipeline_fingerprint("b" * 40, PARAMS)


# ----------------------------------------------------------------------------
# repository


@pytest.mark.parametrize("copy_dir", EXP_COPIES)
def test_find_repo_root_inside_a_dvc_exp_temp_copy_is_the_original_repo(tmp_path, monkeypatch, copy_dir):
    (tmp_path / ".dvc").mkdir()
    copy = tmp_path / copy_dir
    (copy / ".dvc").mkdir(parents=True)
    (copy / "src" / "egsynth").mkdir(parents=True)
    assert find_repo_root(copy / "src" / "egsynth") == tmp_path
    assert find_repo_root(tmp_path / ".dvc" / "tmp") == tmp_path
    monkeypatch.chdir(copy)
    assert find_repo_root() == tmp_path


def test_find_repo_root_outside_a_repo_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="not inside a DVC repository"):
        find_repo_root(tmp_path)


def test_git_state_is_head_and_dirty_when_a_tracked_file_changes(tmp_path):
    assert git_state(tmp_path) == ("none", True)
    git_init(tmp_path)
    (tmp_path / "a.py").write_text("1")
    git_commit_all(tmp_path)
    head = sh("git", "rev-parse", "HEAD", cwd=tmp_path).strip()
    (tmp_path / "untracked.txt").write_text("u")
    assert git_state(tmp_path) == (head, False)
    (tmp_path / "a.py").write_text("2")
    assert git_state(tmp_path) == (head, True)


def test_git_state_reads_content_not_the_index_stat_cache(tmp_path):
    """A changed file whose index entry git trusts (here: assume-unchanged, as a racy entry would
    be) is dirty; so are a staged change, a retargeted symlink, and a change seen from a subdirectory."""
    git_init(tmp_path)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.py").write_text("1")
    (tmp_path / "a.py").write_text("1")
    (tmp_path / "link").symlink_to("a.py")
    git_commit_all(tmp_path)
    head = sh("git", "rev-parse", "HEAD", cwd=tmp_path).strip()
    assert git_state(tmp_path / "sub") == (head, False)
    sh("git", "update-index", "--assume-unchanged", "a.py", cwd=tmp_path)
    (tmp_path / "a.py").write_text("2")
    assert sh("git", "status", "--porcelain", "--untracked-files=no", cwd=tmp_path) == ""
    assert git_state(tmp_path / "sub") == (head, True)
    (tmp_path / "a.py").write_text("1")
    (tmp_path / "link").unlink()
    (tmp_path / "link").symlink_to("sub/b.py")
    assert git_state(tmp_path) == (head, True)
    (tmp_path / "link").unlink()
    (tmp_path / "link").symlink_to("a.py")
    (tmp_path / "sub" / "b.py").write_text("3")
    sh("git", "add", "sub/b.py", cwd=tmp_path)
    (tmp_path / "sub" / "b.py").write_text("1")
    assert git_state(tmp_path) == (head, True)


# ----------------------------------------------------------------------------
# environment


def test_a_package_that_is_not_installed_is_recorded_as_such(monkeypatch):
    monkeypatch.setattr(provenance, "VERSIONED_PACKAGES", ("torch", "egsynth-no-such-package"))
    versions = provenance.installed_versions()
    assert versions["egsynth-no-such-package"] == "not installed"
    assert versions["torch"] == importlib.metadata.version("torch")
