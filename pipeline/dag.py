"""The whole DVC DAG as one Prefect flow: each stage is a task running `dvc repro --single-item <stage>`.

DVC still decides whether a stage is up to date and keeps dvc.lock and its cache right; Prefect adds
what a deployment needs: scheduling, retries for the stages that may fail transiently, and one flow run
to watch. A stage's task starts once its upstream stages' tasks succeeded, so a failure leaves its
downstream stages not run while independent ones go on. Up to `--jobs` independent stages run at once:
DVC holds its repo lock only while it checks and commits a stage, not while the stage's command runs
(`--wait-for-lock` makes each `dvc repro` wait for the others' short holds), and the threads of stages
running at once sleep while they wait rather than spin.

    python -m pipeline.dag [TARGETS...] [--force] [--jobs N]
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline._stage import workspace  # first: it points PREFECT_HOME into the repo before Prefect is imported

# Each stage's output (DVC's and its command's, stdout and stderr) of its latest attempt, under the workspace.
STAGE_LOGS = Path(".prefect", "stage-logs")

from dvc.dvcfile import PROJECT_FILE  # noqa: E402
from dvc.exceptions import DvcException  # noqa: E402
from dvc.parsing import JOIN  # noqa: E402
from dvc.repo import Repo  # noqa: E402
from dvc.repo.reproduce import collect_stages, get_active_graph, plan_repro  # noqa: E402
from prefect import flow, get_run_logger, task  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402
from prefect.context import FlowRunContext  # noqa: E402
from prefect.futures import PrefectFuture, as_completed  # noqa: E402
from prefect.states import Failed, State  # noqa: E402
from prefect.task_runners import ThreadPoolTaskRunner  # noqa: E402


class NoEmptyTraceback(logging.Filter):
    """Prefect logs a task that returned a Failed state with exc_info but no exception in flight, which
    prints a bare "NoneType: None" line under the error; drop that empty exc_info, keep the message."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[0] is None:
            record.exc_info = None
        return True


@dataclass(frozen=True)
class Retries:
    attempts: int  # further attempts after a failure
    delay_seconds: float  # wait before each


# Stages that may fail for reasons outside the repo and pass when run again, by dvc.yaml stage name (a
# foreach stage's name covers all its items). Every other stage is deterministic: a failure there is
# bad input or a bug, and a retry would only repeat it.
TRANSIENT_FAILURES = {
    "parse": Retries(attempts=2, delay_seconds=10),  # its shards may run on a Dask cluster (parse.dask_address)
}

# Two stages at a time: most of the default DAG's length is two independent branches (the parser and the parsing
# of every scene beside pretraining; then the two variants' training and evaluation), and each stage process spends
# 10-15 s single-threaded (imports, DVC's hashing), which the other stage's work fills.
DEFAULT_JOBS = 2

# What `dvc repro` prints for each way it can handle a stage (dvc/stage/run.py, cache.py, __init__.py).
DVC_VERDICTS = (
    ("Running stage '{}'", "DVC ran it"),
    ("Stage '{}' is cached - skipping run", "DVC restored its outs from the run cache"),
    ("Stage '{}' didn't change, skipping", "DVC skipped it: up to date"),
)


@dataclass(frozen=True)
class PlannedStage:
    name: str  # as `dvc repro` addresses it, foreach items expanded: `train@full`
    upstream: tuple[str, ...]  # the planned stages whose outs it depends on


def plan(targets: Sequence[str] = ()) -> list[PlannedStage]:
    """The stages `dvc repro TARGETS` run in the working directory would visit (all of its dvc.yaml without
    targets), in DVC's order: upstream first."""
    with Repo() as repo:
        graph = get_active_graph(repo.index.graph)  # edges point from a stage to the stages it depends on
        order = plan_repro(graph, collect_stages(repo, targets or [PROJECT_FILE]))
        return [
            PlannedStage(stage.addressing, tuple(up.addressing for up in graph.successors(stage))) for stage in order
        ]


def retries_for(stage: str) -> Retries:
    return TRANSIENT_FAILURES.get(stage.partition(JOIN)[0], Retries(attempts=0, delay_seconds=0))


def verdict(stage: str, output: str) -> str:
    for message, meaning in DVC_VERDICTS:
        if message.format(stage) in output:
            return meaning
    return "DVC finished it"


def stage_environment(api_url: str, jobs: int) -> dict[str, str]:
    """The environment of every stage's `dvc repro`: this flow's Prefect server, the interpreter's scripts first on
    PATH (stage commands call `python`), and, when stages run at once, OpenMP threads that sleep rather than spin
    while they wait (unless the caller chose a policy). Every stage keeps its thread count, so it computes the same
    bits as under a plain `dvc repro` on the same machine; a spinning thread that waits for a descheduled sibling
    would make two stages at once several times slower (README, Measured)."""
    return {
        **({"OMP_WAIT_POLICY": "PASSIVE"} if jobs > 1 else {}),
        **os.environ,
        "PREFECT_API_URL": api_url,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }


_ECHO_LOCK = threading.Lock()


def echo(stage: str, segments: Sequence[bytes]) -> None:
    """Write a stage's complete lines (progress bars end theirs with a carriage return) to stdout, each under the
    stage's name, whole: the lines of stages running at once interleave but never mix."""
    with _ECHO_LOCK:
        for segment in segments:
            sys.stdout.buffer.write(f"[{stage}] ".encode() + segment)
        sys.stdout.flush()


@task(cache_policy=NO_CACHE)  # DVC, not Prefect, decides whether a stage is up to date
def reproduce_stage(stage: str, force: bool, api_url: str, jobs: int) -> str | State:
    """`dvc repro --single-item STAGE`, its output shown and kept in the stage's log; what DVC did with it."""
    log = workspace() / STAGE_LOGS / f"{stage}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "dvc", "--wait-for-lock", "repro", "--single-item"]
    command += [*(["--force"] if force else []), stage]
    env = stage_environment(api_url, jobs)
    unfinished = b""
    with log.open("wb") as saved:
        process = subprocess.Popen(command, cwd=workspace(), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        while chunk := process.stdout.read1():
            saved.write(chunk)
            *lines, unfinished = re.split(rb"(?<=[\r\n])", unfinished + chunk)
            echo(stage, lines)
    if unfinished:
        echo(stage, [unfinished + b"\n"])
    if process.wait() != 0:
        return Failed(message=f"stage '{stage}' failed (exit {process.returncode}); its log: {log}")
    outcome = verdict(stage, log.read_text(errors="replace"))
    get_run_logger().info(outcome)
    return outcome


# The flow submits a stage only once its upstream stages succeeded, so a worker never sits waiting.
@flow(name="dvc-dag", task_runner=ThreadPoolTaskRunner())
def dag_flow(targets: tuple[str, ...] = (), force: bool = False, jobs: int = DEFAULT_JOBS) -> State | None:
    """Every stage `dvc repro TARGETS` would visit, one task each, up to `jobs` at once, in DVC's order among
    those ready; fails naming each stage that failed."""
    try:
        stages = plan(targets)
    except DvcException as error:  # a bad dvc.yaml or an unknown target: DVC's message says which
        return Failed(message=str(error))
    api_url = str(FlowRunContext.get().client.api_url).rstrip("/")
    futures: dict[str, PrefectFuture] = {}
    waiting = list(stages)
    running: set[PrefectFuture] = set()
    while waiting or running:
        succeeded = {name for name, future in futures.items() if future not in running and future.state.is_completed()}
        ready = [stage for stage in waiting if set(stage.upstream) <= succeeded][: jobs - len(running)]
        for stage in ready:
            policy = retries_for(stage.name)
            task_for_stage = reproduce_stage.with_options(
                name=stage.name,
                task_run_name=stage.name,
                retries=policy.attempts,
                retry_delay_seconds=policy.delay_seconds,
            )
            futures[stage.name] = task_for_stage.submit(
                stage.name, force, api_url, jobs, wait_for=[futures[name] for name in stage.upstream]
            )
            running.add(futures[stage.name])
            waiting.remove(stage)
        if not running:
            break  # what still waits has a failed stage upstream
        finished = next(as_completed(list(running)))
        finished.wait()  # keeps its final state on the future
        running.remove(finished)
    not_run = [stage.name for stage in waiting]
    failed = [future.state.message for future in futures.values() if future.state.is_failed()]
    if not_run:
        get_run_logger().warning("not run, an upstream stage failed: %s", ", ".join(not_run))
    if failed:
        return Failed(message="; ".join(failed))
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", help="stages to bring up to date with their upstream (default: all)")
    parser.add_argument("-f", "--force", action="store_true", help="run every planned stage, even if up to date")
    parser.add_argument(
        "-j", "--jobs", type=int, default=DEFAULT_JOBS, help=f"stages run at once (default: {DEFAULT_JOBS})"
    )
    args = parser.parse_args()
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, not {args.jobs}")
    logging.getLogger("prefect.task_runs").addFilter(NoEmptyTraceback())
    state = dag_flow(tuple(args.targets), args.force, args.jobs, return_state=True)
    if state.is_failed():
        sys.exit(f"dag: {state.message}")


if __name__ == "__main__":
    main()
