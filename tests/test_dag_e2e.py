"""End to end: the whole-DAG Prefect flow built the smoke pipeline (the `smoke_repo` fixture runs it).

That a plain `dvc repro` after it runs nothing is test_pipeline_e2e.py's test_second_repro_runs_nothing.
"""

import json
import sys
from datetime import datetime

import pytest
from dvc.repo import Repo
from pipeline.dag import DEFAULT_JOBS

from tests._repo import run

pytestmark = pytest.mark.e2e

# Run in the smoke repo: the task runs of the first `dvc-dag` flow run with a `scenes` task (the session's Prefect
# server also holds test_dag.py's flow runs over a tiny DAG, which may start first), as JSON.
TASK_RUNS = """
import json

from prefect import get_client
from prefect.client.schemas.filters import FlowFilter, FlowFilterName, FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.sorting import FlowRunSort

with get_client(sync_client=True) as client:
    flow_runs = client.read_flow_runs(
        flow_filter=FlowFilter(name=FlowFilterName(any_=["dvc-dag"])), sort=FlowRunSort.START_TIME_ASC
    )
    for flow_run in flow_runs:
        task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id])))
        if any(task_run.name == "scenes" for task_run in task_runs):
            break
    else:
        raise SystemExit("no dvc-dag flow run has a scenes task")
names = {task_run.id: task_run.name for task_run in task_runs}
print(json.dumps([
    {
        "name": task_run.name,
        "state": task_run.state_type.value,
        "start": task_run.start_time.isoformat(),
        "end": task_run.end_time.isoformat(),
        "wait_for": [names[upstream.id] for upstream in task_run.task_inputs.get("wait_for", [])],
    }
    for task_run in task_runs
]))
"""


def test_the_flow_ran_every_stage_as_a_prefect_task_after_its_upstream_stages_two_at_a_time(smoke_repo):
    root, env, _ = smoke_repo
    with Repo(str(root)) as repo:
        graph = repo.index.graph  # edges point from a stage to the stages it depends on
        upstream = {stage.name: {up.name for up in graph.successors(stage)} for stage in graph}
    query_env = {**env, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    task_runs = json.loads(run([sys.executable, "-c", TASK_RUNS], root, query_env).stdout)
    by_stage = {task_run["name"]: task_run for task_run in task_runs}
    assert len(task_runs) == len(by_stage) and set(by_stage) == set(upstream) and len(upstream) == 13
    for stage, task_run in by_stage.items():
        assert task_run["state"] == "COMPLETED", stage
        assert set(task_run["wait_for"]) == upstream[stage], stage
        started = datetime.fromisoformat(task_run["start"])
        assert all(datetime.fromisoformat(by_stage[up]["end"]) <= started for up in upstream[stage]), stage
    assert max_running_at_once(task_runs) == DEFAULT_JOBS


def max_running_at_once(task_runs: list[dict]) -> int:
    """The most task runs in progress at one moment: each start adds one, each end removes one (ends first at a tie,
    since a stage ending as another starts did not run beside it)."""
    events = sorted(
        (datetime.fromisoformat(task_run[edge]), step)
        for task_run in task_runs
        for edge, step in (("start", 1), ("end", -1))
    )
    running = most = 0
    for _, step in events:
        running += step
        most = max(most, running)
    return most
