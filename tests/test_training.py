import itertools
import math
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch.utils.data import default_collate

from egsynth.config import params_hash
from egsynth.losses import discriminator_objective, generator_objective
from egsynth.models.variants import VARIANTS
from egsynth.training import (
    CheckpointParamsMismatch,
    EpochData,
    NonFiniteLossError,
    init_distributed,
    load_checkpoint,
    train_gan,
)
from egsynth.training.checkpoint import (
    capture_rng_state,
    checkpoint_name,
    discard_other_checkpoints,
    restore_rng_state,
)
from egsynth.training.gan import _discriminate, decay_factor
from tests._training_worker import (
    DDP_VARIANT,
    GLOBAL,
    PATCH,
    RESUMABLE_VARIANT,
    SLOW_FROM,
    SceneItems,
    build,
    ddp_run,
    ddp_train,
    ddp_worker,
    params_of,
    resumable_run,
    run_and_save,
    tiny_train,
    two_phase_epochs,
    weights,
)

REPO = Path(__file__).resolve().parents[1]
WORKER = REPO / "tests" / "_training_worker.py"


@pytest.fixture
def one_thread():
    """Training tests run single-threaded: bit-identical comparisons across processes, and shared CPUs."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def run(variant, epochs, checkpoint, *, train=None, modules=None, **kwargs):
    train = train or tiny_train()
    generator, discriminator, perceptual = modules or build(variant, train=train)
    result = train_gan(
        generator=generator,
        discriminator=discriminator,
        perceptual=perceptual,
        epochs=epochs,
        config=train,
        variant=variant,
        checkpoint_path=checkpoint,
        params=kwargs.pop("params", params_of(variant, train)),
        device="cpu",
        progress=False,
        **kwargs,
    )
    return result, generator, discriminator


def trainable(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: p.detach().clone() for k, p in module.named_parameters() if p.requires_grad}


def changed(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> set[str]:
    return {k for k in before if not torch.equal(before[k], after[k])}


# ----------------------------------------------------------------------------
# every variant trains


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_variant_trains_with_finite_losses_and_changing_weights(variant, tmp_path, one_thread):
    train = tiny_train(generator_every=1, checkpoint_every=100)
    modules = build(variant, train=train)
    g_before, d_before = trainable(modules[0]), trainable(modules[1])
    # two steps: one of phase 1 (cross task only), one of phase 2 (cross + global self-reconstruction)
    result, generator, discriminator = run(
        variant,
        two_phase_epochs(variant, cross_items=2, global_items=2),
        tmp_path / "c.pt",
        train=train,
        modules=modules,
    )
    assert (result.steps, result.rollbacks, len(result.history)) == (2, 0, 2)
    assert all(math.isfinite(v) for entry in result.history for v in entry.values())
    assert {"d_loss", "g_loss", "g_feat", "g_vgg"} <= result.losses.keys()
    assert (result.losses["g_kl"] > 0) == VARIANTS[variant].vae
    assert len(changed(g_before, trainable(generator))) > 0.8 * len(g_before)
    assert changed(d_before, trainable(discriminator)) == d_before.keys()


def test_a_warmup_epoch_updates_g_every_step_on_the_pixel_l1_alone_and_leaves_d_untouched(tmp_path, one_thread):
    train = tiny_train(generator_every=5, lambda_l1=1.0, warmup_epochs=1, warmup_lr=1e-2, checkpoint_every=100)
    modules = build("full", train=train)
    g_before, d_before = trainable(modules[0]), trainable(modules[1])
    warmup = [EpochData(cross=SceneItems(4, PATCH, seed=1), adversarial=False)]
    result, generator, discriminator = run("full", warmup, tmp_path / "c.pt", train=train, modules=modules)
    assert [entry["step"] for entry in result.history if "g_loss" in entry] == [1, 2]  # G every step, not every 5th
    assert all("d_loss" not in entry for entry in result.history)
    assert all(entry["g_gan"] == entry["g_feat"] == entry["g_vgg"] == 0 for entry in result.history)
    assert all(entry["g_l1"] > 0 and entry["g_loss"] == entry["g_l1"] for entry in result.history)
    assert changed(d_before, trainable(discriminator)) == set()
    assert len(changed(g_before, trainable(generator))) > 0.8 * len(g_before)


def test_the_warmup_trains_g_at_warmup_lr_and_the_adversarial_epochs_at_lr(tmp_path, one_thread):
    """Adam's first step moves every weight by about the lr: the warm-up's lr is 100 times the GAN's."""
    train = tiny_train(lambda_l1=1.0, warmup_epochs=1, lr=1e-5, warmup_lr=1e-3, checkpoint_every=100)
    epochs = [
        EpochData(cross=SceneItems(2, PATCH, seed=1), adversarial=False),
        EpochData(cross=SceneItems(2, PATCH, seed=2)),
    ]
    generator = build("full", train=train)[0]
    start = trainable(generator)
    run("full", epochs[:1], tmp_path / "warm.pt", train=train, modules=(generator, *build("full", train=train)[1:]))
    warm = trainable(generator)
    generator = build("full", train=train)[0]
    run("full", epochs[1:], tmp_path / "gan.pt", train=train, modules=(generator, *build("full", train=train)[1:]))
    gan = trainable(generator)
    name = "synthesis.to_image.weight"
    assert (warm[name] - start[name]).abs().max().item() == pytest.approx(1e-3, rel=0.05)
    assert (gan[name] - start[name]).abs().max().item() == pytest.approx(1e-5, rel=0.05)


def test_warmup_epochs_must_lie_in_phase_1_and_need_a_reconstruction_term():
    with pytest.raises(ValueError, match="at most train.phase1_epochs"):
        tiny_train(warmup_epochs=2, phase1_epochs=1, lambda_l1=1.0)
    with pytest.raises(ValueError, match="lambda_l1 > 0"):
        tiny_train(warmup_epochs=1, lambda_l1=0.0)


def test_the_decay_factor_falls_linearly_over_the_last_epochs_and_is_1_before():
    assert [decay_factor(step, [4, 4], 1) for step in range(8)] == [1, 1, 1, 1, 1, 0.75, 0.5, 0.25]
    assert [decay_factor(step, [2, 3, 1], 2) for step in range(6)] == [1, 1, 1, 0.75, 0.5, 0.25]
    assert all(decay_factor(step, [4, 4], 0) == 1 for step in range(8))


def test_lr_decay_counts_adversarial_epochs_only():
    tiny_train(phase1_epochs=2, phase2_epochs=1, warmup_epochs=1, lambda_l1=1.0, lr_decay_epochs=2)
    with pytest.raises(ValueError, match="lr_decay_epochs"):
        tiny_train(phase1_epochs=2, phase2_epochs=1, warmup_epochs=1, lambda_l1=1.0, lr_decay_epochs=3)


def test_a_decayed_step_moves_g_and_d_by_its_share_of_the_step_without_decay(tmp_path, one_thread):
    """Two adversarial steps, the second at half the lr: the first moves every weight as without decay, and
    Adam's second move (same gradients, same moments) is half of the undecayed run's, to round-off."""
    epochs = [EpochData(cross=SceneItems(4, PATCH, seed=1))]  # batch 2: two steps, decay 1 then 1/2

    def moves(decay_epochs: int) -> list[dict[str, torch.Tensor]]:
        train = tiny_train(phase2_epochs=0, lr_decay_epochs=decay_epochs, checkpoint_every=100)
        generator, discriminator, perceptual = build("full", train=train)
        states = [trainable(generator) | trainable(discriminator)]
        run(
            "full",
            epochs,
            tmp_path / f"decay{decay_epochs}.pt",
            train=train,
            modules=(generator, discriminator, perceptual),
            on_step=lambda step, losses: states.append(trainable(generator) | trainable(discriminator)),
        )
        return [{k: after[k] - before[k] for k in before} for before, after in itertools.pairwise(states)]

    plain, decayed = moves(0), moves(1)
    for name in plain[0]:
        torch.testing.assert_close(decayed[0][name], plain[0][name], rtol=0, atol=0)
        # weights of about 1 leave moves of about 1e-4 a float32 round-off near 1e-7
        torch.testing.assert_close(decayed[1][name], plain[1][name] / 2, rtol=1e-3, atol=1e-7)


def test_lambda_l1_adds_exactly_the_weighted_pixel_l1_and_changes_no_other_term(tmp_path, one_thread):
    variant = "full"
    epochs = two_phase_epochs(variant, cross_items=2)[:1]  # one step of batch 2: items 0 and 1
    batch = default_collate([epochs[0].cross[0], epochs[0].cross[1]])
    with torch.no_grad():
        first_output = build(variant)[0](batch["target_labels"], batch["exemplar"], batch["exemplar_labels"]).image
    expected_l1 = F.l1_loss(first_output, batch["target"]).item()

    paper, _, _ = run(variant, epochs, tmp_path / "paper.pt", train=tiny_train())
    with_l1, _, _ = run(variant, epochs, tmp_path / "l1.pt", train=tiny_train(lambda_l1=2.5))
    paper_terms, l1_terms = paper.history[0], with_l1.history[0]
    assert paper_terms["g_l1"] == 0
    assert l1_terms["g_l1"] == pytest.approx(2.5 * expected_l1, rel=1e-5)
    for term in ("g_gan", "g_feat", "g_vgg", "d_real", "d_fake"):
        assert l1_terms[term] == pytest.approx(paper_terms[term], rel=1e-5), term
    assert l1_terms["g_loss"] == pytest.approx(paper_terms["g_loss"] + l1_terms["g_l1"], rel=1e-5)


@pytest.mark.parametrize("adversarial", [True, False], ids=["gan", "warmup"])
def test_the_logged_terms_are_the_objectives_of_losses_py_on_the_first_batch(adversarial, tmp_path, one_thread):
    """Step 1 logs, per term, generator_objective + discriminator_objective summed over the cross task and
    the λ-weighted global task, computed here from the same initial weights and batch."""
    train = tiny_train(lambda_l1=3.0, lambda_global=0.5, checkpoint_every=100)
    cross, global_ = SceneItems(2, PATCH, seed=1), SceneItems(2, GLOBAL, seed=3, self_reconstruction=True)
    epochs = [EpochData(cross=cross, global_=global_, adversarial=adversarial)]
    logged = run("full", epochs, tmp_path / "c.pt", train=train)[0].history[0]

    generator, discriminator, perceptual = build("full", train=train)  # the run's initial weights
    tasks = [(default_collate([cross[0], cross[1]]), 1.0), (default_collate([global_[0], global_[1]]), 0.5)]
    images = [generator(b["target_labels"], b["exemplar"], b["exemplar_labels"]).image for b, _ in tasks]
    lambdas = dict(lambda_feat=train.lambda_feat, lambda_vgg=train.lambda_vgg, lambda_l1=3.0, lambda_kl=0.0)
    per_task = [
        generator_objective(
            fake=image,
            real=batch["target"],
            discriminated=_discriminate(discriminator, image, batch) if adversarial else None,
            perceptual=perceptual,
            task_weight=weight,
            **lambdas,
        )
        for (batch, weight), image in zip(tasks, images, strict=True)
    ]
    if adversarial:
        per_task += [
            discriminator_objective(discriminated=_discriminate(discriminator, image.detach(), batch), task_weight=w)
            for (batch, w), image in zip(tasks, images, strict=True)
        ]
    keys = {key for terms in per_task for key in terms}
    expected = {key: sum(terms[key].item() for terms in per_task if key in terms) for key in keys}

    assert {key: logged[key] for key in expected} == pytest.approx(expected, rel=1e-6, abs=1e-9)
    assert ("d_loss" in logged) == adversarial
    if not adversarial:
        assert {key for key, value in logged.items() if key.startswith("g_") and value != 0} == {
            "g_l1",
            "g_loss",
            "g_grad_norm",
        }


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


# ----------------------------------------------------------------------------
# update schedule


def test_generator_changes_only_every_generator_every_steps_while_discriminator_changes_every_step(
    tmp_path, one_thread
):
    train = tiny_train(generator_every=3, checkpoint_every=100)
    generator, discriminator, perceptual = build("full", train=train)
    previous = [trainable(generator), trainable(discriminator)]
    observed = []

    def on_step(step, losses):
        now = [trainable(generator), trainable(discriminator)]
        observed.append(
            (step, bool(changed(previous[0], now[0])), bool(changed(previous[1], now[1])), "g_loss" in losses)
        )
        previous[:] = now

    epochs = [EpochData(cross=SceneItems(12, PATCH, seed=1))]  # 6 steps
    run("full", epochs, tmp_path / "c.pt", train=train, modules=(generator, discriminator, perceptual), on_step=on_step)
    assert observed == [(s, s % 3 == 0, True, s % 3 == 0) for s in range(1, 7)]


# ----------------------------------------------------------------------------
# DDP


def test_without_torchrun_init_distributed_is_a_single_main_process(monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    ctx = init_distributed()
    assert (ctx.rank, ctx.world_size, ctx.is_main, ctx.distributed) == (0, 1, True, False)
    assert ctx.device.type == ("cuda" if torch.cuda.is_available() else "cpu")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gradients(checkpoint: Path, generator, discriminator, beta1: float) -> dict[str, torch.Tensor]:
    """The gradients of a one-step run, read back from Adam's first moment (exp_avg = (1 - beta1) g)."""
    state = torch.load(checkpoint, weights_only=True)
    found = {}
    for prefix, module, key in (("0", generator, "optimizer_g"), ("1", discriminator, "optimizer_d")):
        names = [name for name, p in module.named_parameters() if p.requires_grad]
        for index, name in enumerate(names):
            found[f"{prefix}.{name}"] = state[key]["state"][index]["exp_avg"] / (1 - beta1)
    return found


def test_a_two_process_gloo_ddp_step_equals_the_single_process_step(tmp_path, one_thread):
    # forked from this process, which has imported torch and the model code already (spawn would start two fresh
    # interpreters, seconds each); its torch runs one thread, so no OpenMP pool is forked mid-use
    mp.start_processes(ddp_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True, start_method="fork")
    ddp = torch.load(tmp_path / "ddp_weights.pt", weights_only=True)
    single_result, single = ddp_run(tmp_path / "single.pt")
    generator, discriminator, _ = build(DDP_VARIANT)
    assert changed(weights(generator, discriminator), single), "the step changed nothing"
    for key, value in single_result.losses.items():
        assert ddp["losses"][key] == pytest.approx(value, rel=1e-5), key

    # the gradients (G's and D's, one update each) agree to float precision
    train = ddp_train()
    g_ddp = gradients(tmp_path / "ddp.pt", generator, discriminator, train.betas[0])
    g_single = gradients(tmp_path / "single.pt", generator, discriminator, train.betas[0])
    assert g_ddp.keys() == g_single.keys() and len(g_single) > 0
    for key, value in g_single.items():
        assert torch.allclose(g_ddp[key], value, rtol=1e-4, atol=1e-5), key

    # so do the weights, except where the true gradient is zero (conv biases cancelled by an instance
    # norm): there Adam's first step, lr * g / (|g| + eps), turns float noise into a step of up to lr
    assert ddp["weights"].keys() == single.keys()
    for key, value in single.items():
        if key in g_single:
            signal_ = g_single[key].abs() > 1e-3
            assert torch.allclose(ddp["weights"][key][signal_], value[signal_], rtol=1e-5, atol=1e-6), key
            assert (ddp["weights"][key] - value).abs().max() <= 2 * train.lr, key
        else:  # buffers (spectral-norm vectors) and frozen weights
            assert torch.allclose(ddp["weights"][key], value, rtol=1e-5, atol=1e-6), key
