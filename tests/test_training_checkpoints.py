"""Resuming and robustness: a killed run resumes to the same weights, what a checkpoint holds and is named by,
the callers' RNGs, and batches whose losses are not finite."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from egsynth.config import params_hash
from egsynth.training import CheckpointParamsMismatch, EpochData, NonFiniteLossError, load_checkpoint
from egsynth.training.checkpoint import (
    capture_rng_state,
    checkpoint_name,
    discard_other_checkpoints,
    restore_rng_state,
)
from tests._training import (
    changed,
    run,
)
from tests._training_worker import (
    PATCH,
    RESUMABLE_VARIANT,
    SLOW_FROM,
    SceneItems,
    params_of,
    resumable_run,
    run_and_save,
    tiny_train,
    two_phase_epochs,
    weights,
)

REPO = Path(__file__).resolve().parents[1]
WORKER = REPO / "tests" / "_training_worker.py"


# ----------------------------------------------------------------------------
# resume


def test_a_run_killed_midway_resumes_to_weights_identical_to_an_uninterrupted_run(tmp_path, one_thread):
    reference, reference_weights = resumable_run(tmp_path / "reference.pt")
    assert reference.steps == 8

    checkpoint, out = tmp_path / "killed.pt", tmp_path / "final.pt"
    # forked (this process has imported torch and the model code already) and killed as a crash would kill it;
    # it runs one thread, so no OpenMP pool is forked mid-use
    process = mp.get_context("fork").Process(target=run_and_save, args=(checkpoint, out, 0.5))
    process.start()
    deadline = time.monotonic() + 60
    try:  # kill it in phase 2, once the checkpoint of step SLOW_FROM exists
        while not (checkpoint.exists() and torch.load(checkpoint, weights_only=True)["step"] >= SLOW_FROM):
            assert process.is_alive(), f"the run ended (exit {process.exitcode}) before being killed"
            assert time.monotonic() < deadline, "no checkpoint within 60 s"
            time.sleep(0.05)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.join()
    assert process.exitcode == -signal.SIGKILL
    killed_at = torch.load(checkpoint, weights_only=True)["step"]
    assert SLOW_FROM <= killed_at < 8 and not out.exists()

    # resumed in a fresh interpreter, as after a crash
    subprocess.run([sys.executable, str(WORKER), str(checkpoint), str(out)], cwd=REPO, check=True, timeout=120)
    resumed = torch.load(out, weights_only=True)
    assert (resumed["resumed_from"], resumed["steps"]) == (killed_at, 8)
    assert resumed["weights"].keys() == reference_weights.keys()
    different = [k for k, v in reference_weights.items() if not torch.equal(v, resumed["weights"][k])]
    assert not different, f"{RESUMABLE_VARIANT}: resumed weights differ in {different[:5]}"


def test_resume_with_changed_params_is_refused_naming_each_differing_key(tmp_path, one_thread):
    epochs = [EpochData(cross=SceneItems(2, PATCH, seed=1))]
    run("full", epochs, tmp_path / "c.pt")
    other = tiny_train(lr=1e-3, lambda_vgg=5.0)
    with pytest.raises(CheckpointParamsMismatch) as caught:
        run("full", epochs, tmp_path / "c.pt", train=other)
    message = str(caught.value)
    assert "train.lr: 0.0002 -> 0.001" in message and "train.lambda_vgg: 10.0 -> 5.0" in message
    assert set(caught.value.differences) == {"train.lr", "train.lambda_vgg"}
    assert str(tmp_path / "c.pt") in message


def test_a_finished_run_is_not_trained_again(tmp_path, one_thread):
    epochs = [EpochData(cross=SceneItems(4, PATCH, seed=1))]
    first, generator, discriminator = run("gap", epochs, tmp_path / "c.pt")
    again, generator_again, discriminator_again = run("gap", epochs, tmp_path / "c.pt")
    assert (again.steps, again.resumed_from, again.history) == (first.steps, first.steps, first.history)
    assert weights(generator, discriminator).keys() == weights(generator_again, discriminator_again).keys()
    assert not changed(weights(generator, discriminator), weights(generator_again, discriminator_again))


# ----------------------------------------------------------------------------
# checkpoints


def test_checkpoints_load_with_weights_only_and_hold_the_whole_training_state(tmp_path, one_thread):
    stale = tmp_path / ".c.pt.abc123.tmp"  # what a save killed midway leaves behind
    stale.mkdir()
    train = tiny_train()
    result, generator, _ = run("full", [EpochData(cross=SceneItems(4, PATCH, seed=1))], tmp_path / "c.pt", train=train)
    state = torch.load(tmp_path / "c.pt", weights_only=True)
    assert {"generator", "discriminator", "optimizer_g", "optimizer_d", "rng", "history"} <= state.keys()
    assert (state["step"], state["epoch"], state["batch"]) == (2, 1, 0)
    assert state["params_hash"] == params_hash(params_of("full", train))
    assert {"torch", "numpy", "python", "cuda"} <= state["rng"][0].keys()
    # frozen VGG-19 weights are rebuilt from the params, not stored
    frozen = [name for name, p in generator.named_parameters() if not p.requires_grad]
    assert frozen and not set(frozen) & state["generator"].keys()
    assert load_checkpoint(tmp_path / "c.pt", params=params_of("full", train))["step"] == result.steps
    assert not stale.exists()


def test_a_checkpoint_is_named_by_its_params_and_the_md5s_of_its_deps():
    params, deps = {"train": {"lr": 1e-3}}, {"src/egsynth/models": "a.dir", "models/pretrain.pt": "b"}
    name = checkpoint_name(params, deps)
    assert name == f"{params_hash(params)[:16]}-{params_hash(deps)[:16]}.pt"
    assert checkpoint_name(params, dict(reversed(deps.items()))) == name, "the order of the deps does not count"
    assert checkpoint_name(params, deps | {"src/egsynth/models": "c.dir"}) != name
    assert checkpoint_name({"train": {"lr": 2e-3}}, deps).split("-")[1] == name.split("-")[1]


def test_checkpoints_of_other_params_or_deps_are_deleted_each_named_with_why(tmp_path, caplog):
    params, deps = {"train": {"lr": 1e-3}}, {"src/egsynth/models": "a.dir"}
    keep = tmp_path / checkpoint_name(params, deps)
    other_deps = tmp_path / checkpoint_name(params, {"src/egsynth/models": "old.dir"})
    other_params = tmp_path / checkpoint_name({"train": {"lr": 5e-3}}, deps)
    other_both = tmp_path / checkpoint_name({"train": {"lr": 5e-3}}, {"src/egsynth/models": "old.dir"})
    params_only = tmp_path / f"{params_hash(params)[:16]}.pt"  # the naming before deps were part of the key
    unfinished = tmp_path / f".{other_deps.name}.x1y2.tmp"  # a save of another key, killed midway
    own_unfinished = tmp_path / f".{keep.name}.z3w4.tmp"  # train_gan removes these itself
    for path in (keep, other_deps, other_params, other_both, params_only):
        path.write_bytes(b"checkpoint")
    unfinished.mkdir()
    own_unfinished.mkdir()
    unrelated = tmp_path / "notes.txt"
    unrelated.write_text("not a checkpoint")

    with caplog.at_level("WARNING", logger="egsynth.training.checkpoint"):
        discarded = discard_other_checkpoints(keep)

    assert set(discarded) == {other_deps, other_params, other_both, params_only, unfinished}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([keep.name, own_unfinished.name, unrelated.name])
    lines = {line for line in caplog.text.splitlines() if "discarding" in line}
    assert len(lines) == 5
    why = {
        other_deps: "written under the same params by other deps (code, data or pretrained weights changed since)",
        other_params: "written under other params;",
        other_both: "written under other params and other deps",
        params_only: "its name holds no deps digest",
    }
    for path, reason in why.items():
        assert any(f"discarding checkpoint {path}: {reason}" in line for line in lines), (path, caplog.text)
    assert f"discarding {unfinished}: an unfinished save of another checkpoint" in caplog.text
    assert discard_other_checkpoints(tmp_path / "absent" / keep.name) == []


def test_training_leaves_the_callers_global_rngs_as_they_were(tmp_path, one_thread):
    def draws() -> tuple:
        return torch.rand(3), np.random.rand(3), random.random()

    def seeded_draws(train: bool) -> tuple:
        torch.manual_seed(7), np.random.seed(7), random.seed(7)
        if train:
            epochs = two_phase_epochs(RESUMABLE_VARIANT, cross_items=2, global_items=2)
            run(RESUMABLE_VARIANT, epochs, tmp_path / "c.pt")
        return draws()

    untrained, trained = seeded_draws(train=False), seeded_draws(train=True)
    assert torch.equal(untrained[0], trained[0]) and np.array_equal(untrained[1], trained[1])
    assert untrained[2] == trained[2]


def test_rng_states_round_trip():
    state = capture_rng_state()
    drawn = (torch.rand(3), np.random.rand(3), random.random())
    restore_rng_state(state)
    again = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(drawn[0], again[0]) and np.array_equal(drawn[1], again[1]) and drawn[2] == again[2]


# ----------------------------------------------------------------------------
# non-finite losses


def test_a_nan_batch_is_rolled_back_counted_and_skipped(tmp_path, one_thread, caplog):
    saved: dict[int, dict[str, torch.Tensor]] = {}

    def keep(step, path):
        state = torch.load(path, weights_only=True)
        saved[step] = {**state["generator"], **{f"D.{k}": v for k, v in state["discriminator"].items()}}

    epochs = [EpochData(cross=SceneItems(8, PATCH, seed=1, nan_items={2}))]  # item 2: batch 1, i.e. step 2
    result, generator, discriminator = run(
        "full", epochs, tmp_path / "c.pt", train=tiny_train(checkpoint_every=1), on_checkpoint=keep
    )
    assert (result.steps, result.rollbacks) == (4, 1)
    assert [entry["step"] for entry in result.history] == [1, 3, 4]
    assert "step 2 (epoch 0, batch 1): non-finite" in caplog.text
    # the rolled-back step left weights and buffers exactly as the last good step; training went on
    assert not changed(saved[1], saved[2])
    assert changed(saved[2], saved[4])
    assert all(torch.isfinite(v).all() for v in weights(generator, discriminator).values())


def test_consecutive_non_finite_batches_stop_the_training_with_a_clear_error(tmp_path, one_thread):
    epochs = [EpochData(cross=SceneItems(8, PATCH, seed=1, nan_items=set(range(8))))]
    with pytest.raises(NonFiniteLossError, match="3 consecutive batches gave non-finite"):
        run("full", epochs, tmp_path / "c.pt", max_consecutive_rollbacks=3)
