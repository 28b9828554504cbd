"""Seconds per phase of the `evaluate@VARIANT` stage: what pipeline/evaluate.py runs, without Prefect and MLflow.

The stage's calls (load the generator and the metric suite, `evaluate_cases`, `metrics_payload`,
`variant_showcase`) run once; each phase is the CPU seconds spent in the function that does it (PHASES),
counted by a timer wrapped around it, so on a shared machine the numbers count this process's work, not
the time other processes held the cores (the wall seconds of the whole run are printed too). Phases nest:
a task's synthesis and the metrics are part of `evaluate_cases`, the figures part of `variant_showcase`.
The synthesis of each task, and of the exemplar-gain pass (the swap cases with another case's exemplar),
is timed by wrapping the synthesizer: its calls come in the cases table's task order, the gain pass
right after swap.

Needs the pipeline's outputs up to `train` and `parser` at --root (data/eval, models/VARIANT, models/parser.pt,
data/interim/scenes.parquet); reads them and writes nothing there. --out DIR keeps what the stage would
write (VARIANT.json, the metrics; VARIANT/, the showcase) and the per-case scores it logs to MLflow
(VARIANT_scores.parquet), to compare runs; --cases-per-task N (at least 3) evaluates fewer cases, for
a quick look.
Run: OMP_NUM_THREADS=1 .venv/bin/python benchmarks/evaluate_stage.py --variant full [--root .] [--out DIR]
[--cases-per-task N]
"""

import argparse
import functools
import os
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for `pipeline`

from pipeline._stage import stage_paths  # noqa: E402

from egsynth.config import load_params  # noqa: E402
from egsynth.evaluation import attention, evaluate, fid, guidance, layout, metrics, showcase, tasks  # noqa: E402
from egsynth.evaluation.cases import SWAP, read_cases  # noqa: E402
from egsynth.io import write_json_atomic  # noqa: E402
from egsynth.models.generator import load_generator  # noqa: E402

PHASES = {
    "case files (CaseDataset items)": (tasks, "CaseDataset.__getitem__"),
    "PSNR": (evaluate, "psnr"),
    "SSIM": (evaluate, "ssim"),
    "LPIPS (parser features)": (metrics, "LPIPSMetric.forward"),
    "FID features (update)": (fid, "FIDMetric.update"),
    "FID (compute)": (fid, "FIDMetric.compute"),
    "style (Gram on VGG-19)": (evaluate, "style_distance"),
    "layout mIoU (parser)": (layout, "LayoutFidelity.update"),
    "attention statistics": (guidance, "AttentionStatistics.add"),
    "transfer matrix (Fig. 10)": (attention, "TransferMatrix.add"),
    "exemplar-gain pass (case_psnr)": (evaluate, "case_psnr"),
    "showcase: samples": (showcase, "Showcase.samples"),
    "showcase: swap matrix": (showcase, "Showcase.swap_matrix"),
    "showcase: interpolations": (showcase, "Showcase.interpolation"),
    "showcase: attention maps": (showcase, "Showcase.attention"),
    "showcase: transfer matrix and dendrogram": (showcase, "Showcase.transfer_matrix"),
    "showcase: extrapolation": (showcase, "Showcase.extrapolation"),
}
"""Phase -> the function that does it: (module, name or Class.method), looked up where the stage's code calls it."""


def timed(function, phase: str, spent: dict[str, float | None]):
    """`function`, adding the CPU seconds of each call to spent[phase]."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        start = time.process_time()
        try:
            return function(*args, **kwargs)
        finally:
            spent[phase] += time.process_time() - start

    return wrapper


def install_timers(phases: dict[str, tuple[ModuleType, str]]) -> dict[str, float | None]:
    """Wrap each phase's function with a CPU-time counter; the counters (None: no such function in this code)."""
    spent: dict[str, float | None] = {}
    for phase, (module, name) in phases.items():
        *path, attribute = name.split(".")
        owner = functools.reduce(getattr, path, module)
        spent[phase] = 0.0 if hasattr(owner, attribute) else None
        if spent[phase] is not None:
            setattr(owner, attribute, timed(getattr(owner, attribute), phase, spent))
    return spent


def task_synthesis(calls: list[tuple[int, float]], cases: pd.DataFrame) -> dict[str, float]:
    """Synthesizer seconds per task from its calls (batch size, seconds), in the order `evaluate_cases`
    makes them: each task's cases in the table's order, the exemplar-gain pass right after swap."""
    order = []
    for task, count in cases.groupby("task", sort=False).size().items():
        order.append((f"synthesis: {task}", int(count)))
        if task == SWAP:
            order.append(("synthesis: exemplar-gain pass", int(count)))
    seconds, remaining = {}, list(calls)
    for phase, count in order:
        seen, spent = 0, 0.0
        while seen < count and remaining:
            size, elapsed = remaining.pop(0)
            seen, spent = seen + size, spent + elapsed
        seconds[phase] = spent
    if remaining:
        seconds["synthesis: unattributed calls"] = sum(elapsed for _, elapsed in remaining)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path("."), help="a repository with the pipeline's outputs")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"), help="relative to --root")
    parser.add_argument("--variant", default="full")
    parser.add_argument("--out", type=Path, default=None, help="keep the metrics and the showcase here")
    parser.add_argument("--cases-per-task", type=int, default=None, help="the first N cases of each task (all)")
    args = parser.parse_args()
    out = args.out.resolve() if args.out is not None else None
    imports = time.process_time()
    root = args.root.resolve()
    params = load_params(root / args.params)
    os.chdir(root)  # the cases table names its files relative to the repository
    paths = stage_paths()
    device = torch.device("cpu")
    spent = install_timers(
        PHASES | {"evaluate_cases": (evaluate, "evaluate_cases"), "variant_showcase": (showcase, "variant_showcase")}
    )

    wall, cpu = time.perf_counter(), time.process_time()
    generator = load_generator(paths["variant_models"] / args.variant / "generator.pt", map_location=device)
    generator = generator.to(device)
    suite = evaluate.metric_suite(params.evaluate, params.model, parser_path=paths["parser"], device=device)
    cases = read_cases(paths["cases"])
    if args.cases_per_task is not None:
        cases = cases.groupby("task", sort=False).head(args.cases_per_task).reset_index(drop=True)
    setup = time.process_time() - cpu
    synthesize, calls = evaluate.generator_synthesizer(generator), []
    transfer = attention.TransferMatrix() if generator.spec.msca else None

    def timed_synthesize(c1, x2, c2):
        start = time.process_time()
        synthesis = synthesize(c1, x2, c2)
        calls.append((c1.shape[0], time.process_time() - start))
        return synthesis

    evaluation = evaluate.evaluate_cases(
        timed_synthesize,
        cases,
        suite=suite,
        image_size=params.manifest.image_size,
        batch_size=params.evaluate.batch_size,
        device=device,
        seed=params.tasks.seed,
        description=args.variant,
        transfer=transfer,
    )
    payload = evaluate.metrics_payload(args.variant, evaluation, suite, cases)
    with tempfile.TemporaryDirectory() as scratch:
        showcase_dir = (out or Path(scratch)) / args.variant
        showcase_dir.mkdir(parents=True, exist_ok=True)
        showcase.variant_showcase(
            generator,
            cases,
            pd.read_parquet(paths["scenes_table"]),
            transfer=transfer,
            config=params.figures,
            image_size=params.manifest.image_size,
            device=device,
            out=showcase_dir,
        )
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if out is not None:
        write_json_atomic(out / f"{args.variant}.json", payload)
        evaluation.scores.to_parquet(out / f"{args.variant}_scores.parquet", index=False)

    rows = {
        "setup: generator, metric suite, cases": setup,
        "evaluate_cases": spent.pop("evaluate_cases"),
        **task_synthesis(calls, cases),
        **spent,
    }
    threads = os.environ.get("OMP_NUM_THREADS", "default")
    print(f"evaluate@{args.variant}: {cpu:.1f} CPU s, {wall:.1f} wall s (OMP_NUM_THREADS={threads})")
    print(f"  (imports before it: {imports:.1f} CPU s)")
    for phase, seconds in rows.items():
        shown = "n/a" if seconds is None else f"{seconds:7.1f} s  {100 * seconds / cpu:5.1f} %"
        print(f"  {phase:<42} {shown}")


if __name__ == "__main__":
    main()
