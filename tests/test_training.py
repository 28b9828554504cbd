"""Training steps and their schedule: every variant trains, the warm-up, the learning-rate decay, the objective's
terms as losses.py computes them, the generator's update interval, and one DDP step against one process."""

import itertools
import math
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch.utils.data import default_collate

from egsynth.losses import discriminator_objective, generator_objective
from egsynth.models.variants import VARIANTS
from egsynth.training import EpochData, init_distributed
from egsynth.training.gan import _discriminate, decay_factor
from tests._training import (
    changed,
    run,
)
from tests._training_worker import (
    DDP_VARIANT,
    GLOBAL,
    PATCH,
    SceneItems,
    build,
    ddp_run,
    ddp_train,
    ddp_worker,
    tiny_train,
    two_phase_epochs,
    weights,
)


def trainable(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: p.detach().clone() for k, p in module.named_parameters() if p.requires_grad}


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
