"""Fixtures shared across test files, and the order the session runs its tests in.

The end-to-end tests share one Prefect server and one smoke pipeline, which tests/_smoke.py starts in the background
as the session begins; the session runs every test that does not need the pipeline first, so the build overlaps
them. Under pytest-xdist (`make test`: `-n auto --dist loadgroup`, a worker per core) the workers share both, and
the tests that use the smoke repo in place run on one worker, one after another (xdist group "smoke-repo"); a test
that changes a repo takes `smoke_copy`, its own copy.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from filelock import FileLock

from tests._repo import REPO, copy_built_repo, stage_env
from tests._smoke import alive

WORKER = os.environ.get("PYTEST_XDIST_WORKER")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")  # one thread a process, unless set (the build too)
WORKER_NICENESS = 10  # the smoke build, started by the controller, runs ahead of the workers (pytest_sessionstart)
if WORKER:
    # Each xdist worker, and every process it starts (stages, the background smoke build), gets its share of the
    # cores: torch's default of a thread per core in every one of them oversubscribes the machine, and OpenMP
    # threads that spin waiting for a descheduled sibling make a step many times slower. Set before torch loads
    # (nothing above imports it).
    _share = max(1, (os.cpu_count() or 1) // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    for _variable in THREAD_VARIABLES:
        os.environ.setdefault(_variable, str(_share))
    os.nice(WORKER_NICENESS)

# The first end-to-end test may wait for the smoke build (about 5 minutes alone, twice that on a loaded two-core
# machine): end-to-end tests get 30 minutes.
E2E_TIMEOUT_SECONDS = 1800
SMOKE_GROUP = "smoke-repo"
LONGEST_GROUP = "longest-with-smoke"


def measured_seconds(item: pytest.Item) -> float:
    """The duration a `long(seconds=...)` mark records; 0 for the other tests."""
    long = item.get_closest_marker("long")
    return long.kwargs["seconds"] if long else 0.0


def schedule_rank(item: pytest.Item) -> int:
    """0: end-to-end tests of their own (tiny repos, a COCO-stuff tree); 1: unit tests; 2: the tests that need the
    smoke repo."""
    if "smoke_repo" in item.fixturenames:
        return 2
    return 0 if item.get_closest_marker("e2e") else 1


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own, which turns the xdist_group marks into the groups
def pytest_collection_modifyitems(items):
    """The tests that need the smoke repo last (a stable sort: files keep their order), so that everything else runs
    while the smoke pipeline builds: first the end-to-end tests that do not need it, then the unit tests, whose
    seconds each let a worker come free within moments of the build's end, where a half-minute end-to-end test
    would keep it busy past it. Within each rank the `long` ones first, longest first, so that the short ones fill
    the other worker beside them rather than leave the longest to run alone at the end. Tests that use the shared
    smoke repo in place run on one xdist worker (SMOKE_GROUP); `make test` keeps this order
    (`--no-loadscope-reorder`: xdist would otherwise run the biggest group first).

    xdist hands a worker another unit of work (a group, or a test in none) whenever one of its tests ends and it has
    two or fewer left, the one it runs next among them, so a test alone in its unit has the next unit queued behind
    it, idle until it ends: the guide's blocks (42 s) waited behind its experiment (89 s) while the other worker had
    nothing left, and so did the in-place group (20 s) when it followed the experiment. So the longest test that
    needs the smoke repo moves ahead of the last two unit tests, into one group with them: with three tests its
    unit keeps its worker from taking more work until it ends, and the other long ones go to the other worker."""
    items.sort(key=lambda item: (schedule_rank(item), -measured_seconds(item)))
    for item in items:
        if item.get_closest_marker("e2e") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(E2E_TIMEOUT_SECONDS))
        if "smoke_repo" in item.fixturenames and "smoke_copy" not in item.fixturenames:
            item.add_marker(pytest.mark.xdist_group(SMOKE_GROUP))
    queue_the_longest_alone(items)


def queue_the_longest_alone(items: list[pytest.Item]) -> None:
    """Move the longest test that needs the smoke repo ahead of the last two unit tests, the three one xdist group
    (see pytest_collection_modifyitems); nothing where the session has no such test or no two unit tests before it."""
    longest = next((index for index, item in enumerate(items) if schedule_rank(item) == 2), None)
    if longest is None or longest < 2:
        return
    unit = [items[longest], *items[longest - 2 : longest]]
    grouped = any(item.get_closest_marker("xdist_group") for item in unit)
    if grouped or {schedule_rank(item) for item in unit[1:]} != {1}:
        return
    items[longest - 2 : longest + 1] = unit
    for item in unit:
        item.add_marker(pytest.mark.xdist_group(LONGEST_GROUP))


def shared_dir(tmp_path_factory) -> Path:
    """The directory every worker of this session sees: the session's base temp dir (its parent, in a worker)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if WORKER else base


def launcher_log(shared: Path) -> str:
    """The end of tests/_smoke.py's log, read only for a failure message."""
    return f"the log of tests/_smoke.py:\n{(shared / 'launcher.log').read_text()[-3000:]}"


def wait_for(path: Path, what: str, seconds: float, shared: Path) -> str:
    """The text of `path`, once tests/_smoke.py (its pid and log in `shared`) wrote it; fails if it does not."""
    deadline = time.monotonic() + seconds
    launcher = int((shared / "launcher.pid").read_text())
    while not path.exists():
        assert alive(launcher) or path.exists(), f"tests/_smoke.py stopped before its {what}; {launcher_log(shared)}"
        assert time.monotonic() < deadline, f"no {what} after {seconds:.0f} s; {launcher_log(shared)}"
        time.sleep(1)
    return path.read_text()


def launch(shared: Path, session_pid: int, build: bool) -> None:
    """Start tests/_smoke.py for the session owned by `session_pid`, unless a process of the session already did
    (a file lock in `shared`, the directory they all see)."""
    launcher = shared / "launcher.pid"
    with FileLock(shared / "launcher.lock"):
        if not launcher.exists():
            command = [sys.executable, "-m", "tests._smoke", str(shared), str(session_pid)]
            with launcher.with_suffix(".log").open("w") as log:
                started = subprocess.Popen(
                    [*command, *(["--build"] if build else [])],
                    cwd=REPO,
                    env={**os.environ, **{name: os.environ.get(name, "1") for name in THREAD_VARIABLES}},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            launcher.write_text(str(started.pid))


def pytest_sessionstart(session):
    """The xdist controller of a whole-suite run (`make test`: no paths, no -m, no -k) starts the smoke build at once,
    before its workers have collected: the build is the session's longest path. The workers lower their priority
    (WORKER_NICENESS, at import), so that the build, at the controller's, gets a core of its own while they share
    the other."""
    config = session.config
    whole_suite = (
        config.args_source == pytest.Config.ArgsSource.TESTPATHS
        and not config.option.markexpr
        and not config.option.keyword
        and not config.option.collectonly
    )
    controller = not hasattr(config, "workerinput") and bool(getattr(config.option, "numprocesses", None))
    if whole_suite and controller:
        launch(config._tmp_path_factory.getbasetemp(), os.getpid(), build=True)  # the basetemp workers sit in


@pytest.fixture(scope="session", autouse=True)
def background_pipeline(request, tmp_path_factory):
    """Start tests/_smoke.py (once per session, whichever process comes first) when a selected test needs the
    Prefect server or the smoke repo. It stops by itself once the session's pytest process is gone."""
    needed = {name for item in request.session.items for name in item.fixturenames}
    if "prefect_api" not in needed:
        yield None
        return
    shared = shared_dir(tmp_path_factory)
    launch(shared, os.getppid() if WORKER else os.getpid(), build="smoke_repo" in needed)
    yield shared


@pytest.fixture(scope="session")
def prefect_api(background_pipeline):
    """The URL of the session's Prefect server: without it, every stage process the end-to-end tests run would start
    (and migrate) a temporary server of its own, about 10 s each."""
    return wait_for(background_pipeline / "prefect.url", "Prefect server", 300, background_pipeline)


@pytest.fixture(scope="session")
def smoke_repo(background_pipeline, prefect_api):
    """The smoke preset built by the whole-DAG Prefect flow (`python -m pipeline.dag`, one `dvc repro --single-item`
    task per stage) in a temporary copy of the repo: (root, environment to run its stages in, the build's
    CompletedProcess, whose stdout carries each stage's DVC output). Tests read it; one that changes it takes
    `smoke_copy`."""
    shared = background_pipeline
    returncode = int(wait_for(shared / "smoke.rc", "smoke build", E2E_TIMEOUT_SECONDS - 60, shared))
    stdout, stderr = ((shared / f"smoke.{stream}").read_text() for stream in ("stdout", "stderr"))
    command = [sys.executable, "-m", "pipeline.dag"]
    assert returncode == 0, f"{' '.join(command)} failed:\n{stdout[-4000:]}\n{stderr[-4000:]}"
    root = shared / "smoke"
    return root, stage_env(root, prefect_api), subprocess.CompletedProcess(command, returncode, stdout, stderr)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The synthesis commands' tests' inputs (tests/_synthesis.py), written once per module that asks."""
    from tests._synthesis import write_files  # here, not at the top: it imports torch and the CLI

    return write_files(tmp_path_factory.mktemp("synthesis"))


@pytest.fixture
def one_thread():
    """Training tests run single-threaded: bit-identical comparisons across processes, and shared CPUs."""
    import torch  # here, not at the top: the session's ordering and the smoke build need no torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def smoke_copy(smoke_repo, tmp_path):
    """A copy of the built smoke repo (workspace, git, DVC cache, MLflow store) of this test's own: (root, env)."""
    root = tmp_path / "repo"
    return root, copy_built_repo(*smoke_repo[:2], root)
