"""The whole DVC DAG as one Prefect flow: each stage is a task running `dvc repro --single-item <stage>`.

DVC still decides whether a stage is up to date and keeps dvc.lock and its cache right; Prefect adds
what a deployment needs: scheduling, retries for the stages that may fail transiently, and one flow run
to watch. A stage's task waits for its upstream stages' tasks, so a failure leaves its downstream
stages not run while independent ones go on. Stages run one at a time: each `dvc repro` holds DVC's
repo lock.

    python -m pipeline.dag [TARGETS...] [--force]
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
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


@task(cache_policy=NO_CACHE)  # DVC, not Prefect, decides whether a stage is up to date
def reproduce_stage(stage: str, force: bool, api_url: str) -> str | State:
    """`dvc repro --single-item STAGE`, its output shown and kept in the stage's log; what DVC did with it."""
    log = workspace() / STAGE_LOGS / f"{stage}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "PREFECT_API_URL": api_url,  # stage flows report to this flow's server instead of each starting one
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",  # stage commands call `python`
    }
    command = [sys.executable, "-m", "dvc", "repro", "--single-item", *(["--force"] if force else []), stage]
    with log.open("wb") as saved:
        process = subprocess.Popen(command, cwd=workspace(), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        while chunk := process.stdout.read1():
            saved.write(chunk)
            sys.stdout.buffer.write(chunk)
            sys.stdout.flush()
    if process.wait() != 0:
        return Failed(message=f"stage '{stage}' failed (exit {process.returncode}); its log: {log}")
    outcome = verdict(stage, log.read_text(errors="replace"))
    get_run_logger().info(outcome)
    return outcome


# One worker: tasks run one at a time in the order they are submitted, upstream first.
@flow(name="dvc-dag", task_runner=ThreadPoolTaskRunner(max_workers=1))
def dag_flow(targets: tuple[str, ...] = (), force: bool = False) -> State | None:
    """Every stage `dvc repro TARGETS` would visit, one task each; fails naming each stage that failed."""
    try:
        stages = plan(targets)
    except DvcException as error:  # a bad dvc.yaml or an unknown target: DVC's message says which
        return Failed(message=str(error))
    api_url = str(FlowRunContext.get().client.api_url).rstrip("/")
    futures = {}
    for stage in stages:
        policy = retries_for(stage.name)
        task_for_stage = reproduce_stage.with_options(
            name=stage.name, task_run_name=stage.name, retries=policy.attempts, retry_delay_seconds=policy.delay_seconds
        )
        futures[stage.name] = task_for_stage.submit(
            stage.name, force, api_url, wait_for=[futures[name] for name in stage.upstream]
        )
    for future in futures.values():
        future.wait()
    states = {name: future.state for name, future in futures.items()}
    not_run = [name for name, state in states.items() if state.is_pending()]
    failed = [state.message for state in states.values() if state.is_failed()]
    if not_run:
        get_run_logger().warning("not run, an upstream stage failed: %s", ", ".join(not_run))
    if failed:
        return Failed(message="; ".join(failed))
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", help="stages to bring up to date with their upstream (default: all)")
    parser.add_argument("-f", "--force", action="store_true", help="run every planned stage, even if up to date")
    args = parser.parse_args()
    logging.getLogger("prefect.task_runs").addFilter(NoEmptyTraceback())
    state = dag_flow(tuple(args.targets), args.force, return_state=True)
    if state.is_failed():
        sys.exit(f"dag: {state.message}")


if __name__ == "__main__":
    main()
