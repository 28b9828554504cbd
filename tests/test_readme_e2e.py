"""The README's user guide, tried as a new user would: every fenced shell block marked
`<!-- runnable -->` runs as written, in order, in a copy of the built smoke repo, the experiment's block
in a copy of its own; what the guide says its experiment does, it does."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests._repo import EVALUATION_STAGES, REPO, run, stage_runs_of_experiment

pytestmark = pytest.mark.e2e

RUNNABLE = re.compile(r"<!-- runnable -->\n```bash\n(.*?)```", re.DOTALL)
EXPERIMENT = re.compile(r"dvc exp run -n (\S+)((?: -S \S+)+)")


def runnable_blocks() -> list[str]:
    return RUNNABLE.findall((REPO / "README.md").read_text())


def test_the_guide_marks_its_commands_runnable():
    blocks = runnable_blocks()
    commands = "\n".join(blocks)
    assert len(blocks) >= 4
    for command in ("synthesize", "interpolate", "extrapolate", "lineage", "runs", "compare", "dvc exp run"):
        assert command in commands, f"the guide runs no `{command}`"
    assert EXPERIMENT.search(commands), "the guide's experiment names itself and sets params with -S"


def run_blocks(root: Path, env: dict, blocks: list[str]) -> list[str]:
    """Run each block with bash in `root`, in order, as a user pasting it would; the stdout of each."""
    env = env | {"PATH": f"{Path(sys.executable).parent}:{env['PATH']}"}
    outputs = []
    for block in blocks:
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block], cwd=root, env=env, capture_output=True, text=True
        )
        output = result.stdout[-3000:] + result.stderr[-3000:]
        assert result.returncode == 0, f"runnable block failed:\n{block}\n{output}"
        assert "Traceback" not in result.stdout + result.stderr, f"runnable block:\n{block}\n{output}"
        outputs.append(result.stdout)
    return outputs


@pytest.mark.long(seconds=42)
def test_every_runnable_command_of_the_guide_runs_as_written(smoke_copy):
    """Every block but the experiment's, in the guide's order (the experiment runs in a copy of its own, below,
    beside this one)."""
    root, env = smoke_copy
    guide = [block for block in runnable_blocks() if not EXPERIMENT.search(block)]
    run_blocks(root, env, guide)
    assert (root / "out" / "painted.png").is_file() and (root / "out" / "lineage.json").is_file()


@pytest.mark.long(seconds=89)
def test_the_guides_experiment_reruns_exactly_the_evaluation_stages(smoke_copy):
    """The experiment block as written (`dvc exp run -n NAME -S tasks....`) re-runs exactly the evaluation stages,
    whose MLflow runs carry the experiment's name and baseline revision; the params, metrics and plots diffs the
    guide shows hold the changed params, both variants' metrics and the training curves."""
    root, env = smoke_copy
    (block,) = [block for block in runnable_blocks() if EXPERIMENT.search(block)]
    (root / "out").mkdir()  # the guide's first block made it
    (stdout,) = run_blocks(root, env, [block])
    name, settings = EXPERIMENT.search(block).groups()
    changed = dict(setting.split("=", 1) for setting in settings.split(" -S ")[1:])
    assert set(re.findall(r"Running stage '([^']+)'", stdout)) == EVALUATION_STAGES
    tags = stage_runs_of_experiment(root, env, name)
    assert set(tags) == EVALUATION_STAGES, "exactly the stages DVC re-ran are MLflow runs of the experiment"
    head = run(["git", "rev-parse", "HEAD"], root, env).stdout.strip()
    assert {stage_tags["egsynth.dvc_exp_baseline_rev"] for stage_tags in tags.values()} == {head}

    dvc = [sys.executable, "-m", "dvc"]
    params = json.loads(run([*dvc, "params", "diff", "--json"], root, env).stdout)["params.yaml"]
    shown = {key: str(diff["new"]) for key, diff in params.items()}
    assert shown and shown.items() <= changed.items(), "the diff shows the params the guide set to a new value"
    metrics = json.loads(run([*dvc, "metrics", "diff", "--json"], root, env).stdout)["reports/metrics.json"]
    assert any(key.startswith("full.") for key in metrics) and any(key.startswith("gap.") for key in metrics)
    plots = json.loads((root / "out" / "plots.json").read_text())["data"]
    assert any("plots/train/" in plot and content for plot, content in plots.items()), sorted(plots)
