"""The ablation study: `egsynth ablation collect` reads DVC experiments' commits, the report renders the section."""

import json
import math
import re
import sys

import pytest
import yaml
from dvc.repo.experiments.refs import ExpRefInfo
from typer.testing import CliRunner

from egsynth.cli import app
from egsynth.evaluation.ablation import (
    CollectError,
    Ordering,
    ablation_columns,
    ablation_html,
    ablation_markdown,
    ablation_rows,
    collect,
    psnr_orderings,
    read_collected,
)
from egsynth.evaluation.report import PAPER_TABLE_1, markdown_report
from egsynth.evaluation.results import METRICS
from tests._workspace import git_commit_all, git_init, sh

runner = CliRunner()
PAPER_DUPLICATING = ["full", "no_global", "no_fm", "gap", "spade_vae", "no_att"]
"""The paper's variants by their duplicating PSNR in Table 1, best first."""


def task(psnr: float, miou: float = 0.3) -> dict[str, float]:
    return dict.fromkeys(METRICS, 1.0) | {"psnr": psnr, "miou": miou}


def report_metrics(psnr: dict[str, float], *, attention: tuple[str, ...] = ()) -> dict:
    """A reports/metrics.json as the report stage's `combine` writes it: duplicating and swap for each model."""
    metrics = {
        model: {"duplicating": task(value), "swap": task(value - 1) | {"exemplar_gain": value / 10}}
        | ({"attention": {"entropy": 0.8, "label_match": value / 100}} if model in attention else {})
        for model, value in psnr.items()
    }
    return metrics | {"truth": {"duplicating": {"miou": 0.6}}, "backbones": {"psnr": "pixels"}}


ABLATIONS = report_metrics(
    {"full": 20.0, "gap": 19.0, "no_att": 12.0, "no_fm": 18.5, "untrained": 10.0, "class_mean": 19.5},
    attention=("full", "no_fm"),
)
SEED1 = report_metrics({"full": 19.2, "gap": 19.4, "untrained": 10.5, "class_mean": 19.5}, attention=("full",))


# ---------------------------------------------------------------------------------------------
# collect: a git repo whose experiment refs point at commits, as `dvc exp run` leaves them


def commit_experiment(repo, baseline: str, name: str, files: dict[str, str]) -> str:
    """A commit on `baseline` holding `files`, under DVC's ref of experiment `name`; the workspace back at
    `baseline`. Its sha."""
    for path, text in files.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text)
    git_commit_all(repo)
    commit = sh("git", "rev-parse", "HEAD", cwd=repo).strip()
    sh("git", "update-ref", str(ExpRefInfo(baseline, name)), commit, cwd=repo)
    sh("git", "reset", "-q", "--hard", baseline, cwd=repo)
    return commit


def params_yaml(variants: list[str], seed: int) -> str:
    return yaml.safe_dump(
        {"variants": variants, "model": {"seed": seed}, "pretrain": {"seed": seed}, "train": {"seed": seed, "lr": 0.1}}
    )


@pytest.fixture
def experiments(tmp_path):
    """(repo, {experiment: commit}): `ablations`, `seed1`, and `broken`, whose commit has no metrics file."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git_init(repo)
    (repo / ".dvc").mkdir()
    (repo / ".dvc" / "config").write_text("")
    (repo / "params.yaml").write_text(params_yaml(["full", "gap"], 0))
    git_commit_all(repo)
    baseline = sh("git", "rev-parse", "HEAD", cwd=repo).strip()
    variants = ["full", "gap", "no_att", "no_fm"]
    commits = {
        "ablations": commit_experiment(
            repo,
            baseline,
            "ablations",
            {"params.yaml": params_yaml(variants, 0), "reports/metrics.json": json.dumps(ABLATIONS)},
        ),
        "seed1": commit_experiment(
            repo,
            baseline,
            "seed1",
            {"params.yaml": params_yaml(["full", "gap"], 1), "reports/metrics.json": json.dumps(SEED1)},
        ),
        "broken": commit_experiment(repo, baseline, "broken", {"params.yaml": params_yaml(["full"], 2)}),
    }
    return repo, commits


def test_collect_reads_each_experiments_commit_and_labels_the_second_seeds_columns(experiments):
    repo, commits = experiments
    before = sh("git", "status", "--porcelain", "--ignored", cwd=repo), sh("git", "rev-parse", "HEAD", cwd=repo)
    collected = collect(repo, ["ablations", "seed1"], {"seed1": "seed 1"})

    assert collected["experiments"]["ablations"]["commit"] == commits["ablations"]
    assert collected["experiments"]["seed1"]["commit"] == commits["seed1"]
    assert collected["experiments"]["ablations"]["params"] == {
        "variants": ["full", "gap", "no_att", "no_fm"],
        "model.seed": 0,
        "pretrain.seed": 0,
        "train.seed": 0,
    }
    assert collected["experiments"]["seed1"]["params"]["model.seed"] == 1
    assert collected["models"]["full"] == ABLATIONS["full"]
    assert collected["models"]["full (seed 1)"] == SEED1["full"]
    assert collected["models"]["untrained (seed 1)"] == SEED1["untrained"]
    assert collected["experiments"]["seed1"]["models"]["gap (seed 1)"] == "gap"
    assert "backbones" not in collected["models"] and "backbones (seed 1)" not in collected["models"]
    assert set(collected["models"]) == {
        *(name for name in ABLATIONS if name != "backbones"),
        *(f"{name} (seed 1)" for name in SEED1 if name != "backbones"),
    }
    after = sh("git", "status", "--porcelain", "--ignored", cwd=repo), sh("git", "rev-parse", "HEAD", cwd=repo)
    assert after == before  # read from git: nothing checked out, nothing written


def test_two_experiments_whose_models_would_share_a_column_are_refused(experiments):
    repo, _ = experiments
    with pytest.raises(CollectError, match=r"^seed1: its model 'full' is also ablations's; give one of them"):
        collect(repo, ["ablations", "seed1"], {})


def collect_cli(repo, monkeypatch, *args: str):
    monkeypatch.chdir(repo)
    return runner.invoke(app, ["ablation", "collect", *args])


def test_the_command_writes_what_collect_returns(experiments, monkeypatch):
    repo, _ = experiments
    output = repo / "reports" / "ablation" / "metrics.json"
    result = collect_cli(repo, monkeypatch, "ablations", "seed1", "--seed-label", "seed1=seed 1", "-o", str(output))
    assert result.exit_code == 0, result.output
    assert json.loads(output.read_text()) == collect(repo, ["ablations", "seed1"], {"seed1": "seed 1"})
    assert result.output.startswith(f"wrote {output}: 12 models from ablations (")  # 7 + 5, truths included


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ablations", "nosuch"], "error: nosuch: no DVC experiment of that name in "),
        (["ablations", "broken"], "error: broken (commit {broken}): has no reports/metrics.json"),
        (["ablations", "--seed-label", "seed1=seed 1"], "error: seed1: has a seed label but is not among"),
        (["ablations", "--seed-label", "ablations"], "error: --seed-label 'ablations': expected EXP=LABEL"),
        (["ablations", "ablations"], "error: ablations: experiment given twice"),
    ],
)
def test_a_bad_experiment_is_one_error_line_exit_2_and_nothing_written(experiments, monkeypatch, args, message):
    repo, commits = experiments
    output = repo / "reports" / "ablation" / "metrics.json"
    result = collect_cli(repo, monkeypatch, *args, "-o", str(output))
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message.format(broken=commits["broken"][:12])), result.output
    assert not output.parent.exists()


@pytest.mark.e2e  # a real `dvc exp run`
def test_collect_finds_the_commit_dvc_exp_run_made(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git_init(repo)
    sh(sys.executable, "-m", "dvc", "init", "-q", cwd=repo)
    script = (
        "import json, os, yaml\n"
        "seed = yaml.safe_load(open('params.yaml'))['model']['seed']\n"
        "os.makedirs('reports', exist_ok=True)\n"
        "json.dump({'full': {'duplicating': {'psnr': 10.0 + seed}}}, open('reports/metrics.json', 'w'))\n"
    )
    (repo / "report.py").write_text(script)
    (repo / "params.yaml").write_text(params_yaml(["full"], 0))
    stage = {
        "cmd": f"{sys.executable} report.py",
        "deps": ["report.py"],
        "params": ["model.seed"],
        "metrics": [{"reports/metrics.json": {"cache": False}}],
    }
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"report": stage}}))
    git_commit_all(repo)
    sh(sys.executable, "-m", "dvc", "exp", "run", "-q", "-n", "seed3", "-S", "model.seed=3", cwd=repo)

    collected = collect(repo, ["seed3"], {"seed3": "seed 3"})
    refs = sh("git", "for-each-ref", "--format=%(refname) %(objectname)", "refs/exps", cwd=repo).splitlines()
    (commit,) = [line.split()[1] for line in refs if line.split()[0].endswith("/seed3")]
    assert collected["experiments"]["seed3"]["commit"] == commit
    assert collected["experiments"]["seed3"]["params"] == {
        "variants": ["full"],
        "model.seed": 3,
        "pretrain.seed": 0,
        "train.seed": 0,
    }
    assert collected["models"] == {"full (seed 3)": {"duplicating": {"psnr": 13.0}}}


# ---------------------------------------------------------------------------------------------
# the section, on hand-made collected files


def collected_file(experiments: dict[str, tuple[str | None, dict]]) -> dict:
    """What `collect` writes, from experiment -> (seed label, its reports/metrics.json)."""
    result: dict = {"experiments": {}, "models": {}}
    for index, (name, (label, metrics)) in enumerate(experiments.items()):
        columns = {(f"{m} ({label})" if label else m): m for m in metrics if m != "backbones"}
        result["models"] |= {column: metrics[model] for column, model in columns.items()}
        params = {"variants": [m for m in metrics if m in PAPER_TABLE_1], "model.seed": index, "train.seed": index}
        result["experiments"][name] = {
            "commit": f"{index}" * 40,
            "params": params,
            "seed_label": label,
            "models": columns,
            "backbones": metrics["backbones"],
        }
    return result


ALL_VARIANTS = report_metrics(
    {
        "full_attention": 19.0,
        "no_global": 18.8,
        "full": 20.0,
        "untrained": 10.0,
        "spade_vae": 17.0,
        "gap": 18.2,
        "class_mean": 19.5,
        "no_fm": 18.5,
        "no_att": 12.0,
    },
    attention=("full", "no_fm", "no_global"),
)
"""Our duplicating PSNR in the paper's order of its variants, full_attention between."""
COLLECTED = collected_file({"seed1": ("seed 1", SEED1), "ablations": (None, ALL_VARIANTS)})
# COLLECTED's variant columns: the paper's order, full_attention, then the second seed's; the baselines follow
VARIANT_COLUMNS = [
    "spade_vae",
    "gap",
    "no_att",
    "no_fm",
    "no_global",
    "full",
    "full_attention",
    "gap (seed 1)",
    "full (seed 1)",
]


def test_the_columns_are_the_papers_order_then_full_attention_then_the_second_seed_then_the_first_baselines():
    assert [column.name for column in ablation_columns(COLLECTED)] == [*VARIANT_COLUMNS, "untrained", "class_mean"]


def test_the_table_has_every_metric_of_every_task_the_guidance_rows_and_marks_each_rows_best():
    markdown = "\n".join(ablation_markdown(COLLECTED))
    header = next(line for line in markdown.splitlines() if line.startswith("| task | metric |"))
    assert header.split(" | ")[2:] == [*VARIANT_COLUMNS, "untrained full", "class mean color |"]
    rows = {tuple(line.split(" | ")[:2]): line for line in markdown.splitlines() if line.startswith("| ")}
    for task_name in ("duplicating", "swap"):
        assert {metric for (task_cell, metric) in rows if task_cell == f"| {task_name}"} >= {
            "PSNR ↑",
            "SSIM ↑",
            "LPIPS ↓",
            "FID ↓",
            "L_style ↓",
            "layout mIoU ↑",
        }
    assert ("| swap", "exemplar gain (dB) ↑") in rows and ("| duplicating", "exemplar gain (dB) ↑") not in rows
    psnr = ["17.00", "18.20", "12.00", "18.50", "18.80", "**20.00**"]
    assert rows[("| duplicating", "PSNR ↑")].split(" | ")[2:8] == psnr
    assert rows[("| attention", "label match ↑")].split(" | ")[2:8] == ["–", "–", "–", "0.185", "0.188", "**0.200**"]
    assert "**" not in rows[("| attention", "entropy (1 = uniform)")]  # no better side
    assert len(re.findall(r"\*\*", markdown)) == 2 * (len(rows) - 2)  # one bold per row but entropy's (and header's)


def test_the_papers_psnr_ordering_beside_ours_names_no_pair_where_ours_agrees():
    (first_seed, second_seed) = [o for o in psnr_orderings(COLLECTED) if o.task == "duplicating"]
    assert sorted(first_seed.paper, key=first_seed.paper.get, reverse=True) == PAPER_DUPLICATING
    assert first_seed.seed_label is None
    assert first_seed.disagreements() == []
    ordering = " > ".join(PAPER_DUPLICATING)
    assert first_seed.line() == f"duplicating PSNR — paper: {ordering}; ours: {ordering}; every pair agrees"
    assert second_seed.line() == (
        "duplicating PSNR (seed 1) — paper: full > gap; ours: gap > full; 1 of 1 pairs disagree: "
        "gap > full (paper: full > gap)"
    )


def test_a_disagreement_names_both_orders_of_the_pair_and_a_tie_counts_as_one():
    paper = {name: PAPER_TABLE_1[name]["duplicating"]["psnr"] for name in ("full", "no_fm", "gap")}
    ordering = Ordering("duplicating", None, paper, {"full": 20.0, "no_fm": 18.0, "gap": 18.0})
    assert ordering.disagreements() == [("no_fm", "gap")]
    assert ordering.line() == (
        "duplicating PSNR — paper: full > no_fm > gap; ours: full > no_fm = gap; 1 of 3 pairs disagree: "
        "gap = no_fm (paper: no_fm > gap)"
    )


def test_the_section_lists_the_orderings_and_the_experiments_in_markdown_and_html():
    swapped = ALL_VARIANTS | {"gap": ALL_VARIANTS["no_fm"], "no_fm": ALL_VARIANTS["gap"]}
    collected = collected_file({"ablations": (None, swapped)})
    markdown = "\n".join(ablation_markdown(collected))
    assert "- ablations: commit 000000000000, variants [no_global, full, spade_vae, gap, no_fm, no_att]" in markdown
    assert "1 of 15 pairs disagree: gap > no_fm (paper: no_fm > gap)" in markdown
    page = ablation_html(collected)
    assert page.startswith('<h2 id="ablation-study">Ablation study</h2>')
    assert "<code>egsynth ablation collect</code>" in page and "`" not in page, "code spans as HTML, not backticks"
    orderings = re.search(r'<ul id="ablation-orderings">(.*?)</ul>', page).group(1)
    assert orderings.count("<li>") == 1 and "gap &gt; no_fm (paper: no_fm &gt; gap)" in orderings
    table = re.search(r'<table id="ablation">(.*?)</table>', page).group(1)
    rows = ablation_rows(collected["models"], [column.name for column in ablation_columns(collected)])
    assert "<th>full_attention</th>" in table
    assert table.count("<td class=best>") == sum(row.best is not None for row in rows) == len(rows) - 1  # entropy


def test_the_report_has_the_section_only_where_the_ablation_folder_holds_the_collected_file(tmp_path):
    main = report_metrics({"full": 20.0, "gap": 19.0})
    folder = tmp_path / "ablation"
    folder.mkdir()
    (folder / "README.md").write_text("how it is made\n")
    assert read_collected(folder) is None
    without = markdown_report(
        main, ["full", "gap"], [], cases={}, relative_to=tmp_path, ablation=ablation_markdown(read_collected(folder))
    )
    assert "Ablation study" not in without and ablation_html(None) == ""

    (folder / "metrics.json").write_text(json.dumps(COLLECTED))
    collected = read_collected(folder)
    with_section = markdown_report(
        main, ["full", "gap"], [], cases={}, relative_to=tmp_path, ablation=ablation_markdown(collected)
    )
    assert with_section.startswith(without) and "\n## Ablation study\n" in with_section.removeprefix(without)


def test_missing_values_are_dashes_and_no_row_of_table_1_is_dropped():
    partial = collected_file({"ablations": (None, report_metrics({"full": 20.0}) | {"gap": {"duplicating": {}}})})
    rows = ablation_rows(partial["models"], ["full", "gap"])
    psnr = next(row for row in rows if (row.task, row.metric) == ("duplicating", "psnr"))
    assert math.isnan(psnr.values["gap"]) and psnr.best == "full"
    assert [row.metric for row in rows if row.task == "duplicating"] == [*METRICS, "miou"]
