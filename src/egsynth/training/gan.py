"""The GAN training loop of Eq. 11-12 (Sec. 3.4; Sec. 4 "Implementation details"; appendix F).

Per iteration, with a cross batch (x_p, c_p, x_q, c̃_q) and, in epochs that have one, a global batch
(x, c, x, c̃) weighted by λ = `lambda_global`:

    x̂_p = G(c_p, x_q, c̃_q)                                                           (Eq. 9)
    x̂   = G(c, x, c̃)                                                                  (Eq. 10)
    L_D = adv_D(D(x_p, c_p, x_q, c̃_q), D(x̂_p, c_p, x_q, c̃_q)) + λ adv_D(D(x, c, x, c̃), D(x̂, c, x, c̃))
    L_G = adv_G(D(x̂_p, ...)) + L_spade(x̂_p, x_p) + λ {adv_G(D(x̂, ...)) + L_spade(x̂, x)}  (Eq. 11)

with L_spade = lambda_feat * feature matching + lambda_vgg * VGG perceptual loss ([38]) + lambda_l1 *
pixel L1 (not in the paper, where it is 0), plus lambda_kl * KL(mu, logvar) summed over the batch
per task for the `spade_vae` baseline (SPADE's KLDLoss); adv is `gan_loss` in `train.gan_loss` form
(hinge or the log form of Eq. 11). Each task's terms are `losses.generator_objective` and
`losses.discriminator_objective`; this loop sums them. Eq. 12's min-max alternates: D is updated
every iteration, G every `generator_every` iterations (Sec. 4: "every 5 iterations"), on the steps
that are multiples of it (steps count from 1). Both use Adam(lr, betas); over the last
`train.lr_decay_epochs` epochs that lr falls linearly to 0, step by step (`decay_factor`; SPADE's
`niter_decay`, not in the paper: without it a short CPU schedule ends wherever its last G updates put
it, README "Deviations").

Warm-up epochs (`EpochData.adversarial` False; the first `train.warmup_epochs` of phase 1) train G
alone, every iteration, at `train.warmup_lr`, on the pixel L1 term (and KL for `spade_vae`): without
D there is no adversarial or feature-matching term, and D is neither run nor updated; the random
VGG's perceptual term is left out too (it nearly doubles a warm-up step and did not raise PSNR). Not
in the paper: within a CPU budget of a few hundred G updates, the adversarial schedule leaves G far
from painting the routed colors (README, "Deviations").

Order within an iteration (pix2pixHD's): one G forward; L_G through the current D (its weights
frozen for that backward), L_D on x̂ detached; then, only if every loss and gradient is finite on
every rank, both optimizers step. So neither update sees the other's step of the same iteration.

Non-finite losses: a NaN/inf loss or gradient restores the iteration's buffers and skips the batch
(`rollback.py`). Resume: a checkpoint every `checkpoint_every` steps and at the end holds the exact
data position and every RNG state, so a killed run restarted with the same params ends with the same
weights as an uninterrupted one (`run_state.py`; the batch order is `epochs.py`'s).

DDP: under torchrun (see `distributed.py`) G and D are wrapped in DDP; `train.batch_size` is the
global batch, split evenly over ranks (DistributedSampler, no shuffling; `epochs.py`), and every loss
is a batch mean, so a DDP step equals the single-process step on the same batch (instance norm).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from egsynth.config import TrainConfig
from egsynth.losses import (
    DISCRIMINATOR_TERMS,
    GENERATOR_TERMS,
    VGGPerceptualLoss,
    discriminator_objective,
    generator_objective,
)
from egsynth.training.checkpoint import (
    capture_rng_state,
    frozen_digest,
    load_checkpoint,
    load_trainable_state_dict,
    remove_stale_temporaries,
    restore_rng_state,
    restores_global_rng_state,
    save_checkpoint,
    trainable_state_dict,
)
from egsynth.training.distributed import average, barrier, current_context, gather, unwrap, wrap_module
from egsynth.training.epochs import EpochData, iterate_epoch, plan_epochs, to_device
from egsynth.training.rollback import count_rollback, restore_buffers, snapshot_buffers
from egsynth.training.run_state import RunState, check_resumable, deterministic_algorithms, seed_everything

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------
# results


@dataclass
class TrainResult:
    steps: int  # iterations done in total (rolled-back ones included), resumed ones included
    rollbacks: int  # batches skipped because a loss or gradient was not finite
    losses: dict[str, float]  # the latest value of every logged loss
    history: list[dict[str, float]] = field(default_factory=list)  # per good step: {"step": s, loss: value, ...}
    resumed_from: int = 0  # step of the checkpoint the run resumed from (0: started fresh)


# ----------------------------------------------------------------------------
# helpers


def _discriminate(discriminator: nn.Module, fake: Tensor, batch: Mapping[str, Tensor]) -> tuple[list, list]:
    """D(x̂, c, x2, c̃2) and D(x, c, x2, c̃2) in one pass (concatenated along the batch), split back."""
    b = fake.shape[0]
    c, x2, c2 = batch["target_labels"], batch["exemplar"], batch["exemplar_labels"]
    outputs = discriminator(
        torch.cat([fake, batch["target"]]), torch.cat([c, c]), torch.cat([x2, x2]), torch.cat([c2, c2])
    )  # per discriminator: features [2B, ...], logits last
    fake_outputs = [[t[:b] for t in per_d] for per_d in outputs]
    real_outputs = [[t[b:] for t in per_d] for per_d in outputs]
    return fake_outputs, real_outputs


def _grad_norm(parameters: Sequence[nn.Parameter], device: torch.device) -> Tensor:
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.zeros((), device=device)
    return torch.nn.utils.get_total_norm(grads, norm_type=2.0)


@contextmanager
def _frozen(parameters: Sequence[nn.Parameter]) -> Iterator[None]:
    """Parameters excluded from autograd for a while (D during G's backward)."""
    for p in parameters:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in parameters:
            p.requires_grad_(True)


# ----------------------------------------------------------------------------
# the training loop


@restores_global_rng_state
def train_gan(
    *,
    generator: nn.Module,  # G (egsynth.models.generator.Generator), built from the model params
    discriminator: nn.Module,  # D (egsynth.models.discriminator.MultiscaleDiscriminator)
    perceptual: VGGPerceptualLoss | None,  # the VGG term of L_spade; None: no VGG term
    epochs: Sequence[EpochData],  # one entry per epoch, in order (phase 1, then phase 2 with global data)
    config: TrainConfig,  # lr, betas, generator_every, lambda_*, gan_loss, batch_size, seed, checkpoint_every
    variant: str,  # the generator variant (recorded in the checkpoint; spade_vae adds the KL term)
    checkpoint_path: Path,  # resumed from when it exists; written every checkpoint_every steps and at the end
    params: Mapping[str, Any],  # plain dict of the params the run depends on; a checkpoint under others is refused
    device: torch.device | str,  # this rank's device
    on_step: Callable[[int, dict[str, float]], None] | None = None,  # rank 0, after each good step (MLflow)
    on_checkpoint: Callable[[int, Path], None] | None = None,  # rank 0, after each checkpoint is written
    num_workers: int = 0,  # DataLoader worker processes
    max_consecutive_rollbacks: int = 3,  # this many non-finite batches in a row raise NonFiniteLossError
    deterministic: bool = True,  # torch (and cuDNN) deterministic algorithms: bit-identical resumes, also on GPU
    progress: bool = True,  # tqdm bar on rank 0
) -> TrainResult:
    """Train G and D on `epochs` by Eq. 11-12, resuming from `checkpoint_path` if it exists.

    Returns the steps done, the rollbacks, the latest losses and the per-step loss history (whole
    run, resumed part included). G and D hold the trained weights afterwards.
    Raises:
        CheckpointParamsMismatch: the checkpoint was written under other params.
        CheckpointError: the checkpoint belongs to another variant, other data or other frozen weights.
        NonFiniteLossError: `max_consecutive_rollbacks` consecutive non-finite batches.
    """
    ctx = current_context(device)
    if config.batch_size % ctx.world_size:
        raise ValueError(f"train.batch_size {config.batch_size} is not divisible by the {ctx.world_size} ranks")
    checkpoint_path = Path(checkpoint_path)
    G = wrap_module(generator, ctx, find_unused_parameters=True)  # DDP under torchrun, else `generator` itself
    D = wrap_module(discriminator, ctx)
    if perceptual is not None:
        perceptual.to(ctx.device)
    g_params = [p for p in generator.parameters() if p.requires_grad]
    d_params = [p for p in discriminator.parameters() if p.requires_grad]
    optimizer_g = torch.optim.Adam(g_params, lr=config.lr, betas=config.betas)
    optimizer_d = torch.optim.Adam(d_params, lr=config.lr, betas=config.betas)
    plans = plan_epochs(epochs, batch_size=config.batch_size, ctx=ctx, lambda_global=config.lambda_global)
    epoch_batches = [len(plan) for plan in plans]
    g_frozen = frozen_digest(generator)

    # -- fresh start or resume --
    if ctx.is_main:
        remove_stale_temporaries(checkpoint_path)
    barrier(ctx)
    run = RunState()
    if checkpoint_path.exists():
        state = load_checkpoint(checkpoint_path, params=params)
        check_resumable(state, checkpoint_path, variant=variant, epoch_batches=epoch_batches, g_frozen=g_frozen)
        load_trainable_state_dict(generator, state["generator"], what="generator")
        load_trainable_state_dict(discriminator, state["discriminator"], what="discriminator")
        optimizer_g.load_state_dict(state["optimizer_g"])
        optimizer_d.load_state_dict(state["optimizer_d"])
        run = RunState(**{key: state[key] for key in RunState.__dataclass_fields__})
        if len(state["rng"]) == ctx.world_size:
            restore_rng_state(state["rng"][ctx.rank], ctx.device)
        else:
            log.warning(
                "%s: written by %d ranks, now %d: RNG streams reseeded",
                checkpoint_path,
                len(state["rng"]),
                ctx.world_size,
            )
            seed_everything(config.seed + ctx.rank + 1_000_003 * run.step)
        log.info(
            "resuming %s from %s at step %d (epoch %d, batch %d)",
            variant,
            checkpoint_path,
            run.step,
            run.epoch,
            run.batch,
        )
    else:
        seed_everything(config.seed + ctx.rank)
    resumed_from = run.step
    last_saved = run.step if checkpoint_path.exists() else -1

    def write_checkpoint() -> None:
        nonlocal last_saved
        rng = gather(capture_rng_state(ctx.device), ctx)  # every rank's streams
        if ctx.is_main:
            state = {
                "variant": variant,
                "generator": trainable_state_dict(generator),
                "discriminator": trainable_state_dict(discriminator),
                "generator_frozen_digest": g_frozen,
                "optimizer_g": optimizer_g.state_dict(),
                "optimizer_d": optimizer_d.state_dict(),
                "epoch_batches": epoch_batches,
                "rng": rng,
                "world_size": ctx.world_size,
                "params": dict(params),
            }
            save_checkpoint(checkpoint_path, state | asdict(run))
            if on_checkpoint is not None:
                on_checkpoint(run.step, checkpoint_path)
        barrier(ctx)
        last_saved = run.step

    bar = tqdm(
        total=sum(epoch_batches),
        initial=run.step,
        desc=f"train {variant}",
        unit="step",
        disable=not (progress and ctx.is_main),
    )
    G.train()
    D.train()
    with deterministic_algorithms(deterministic, ctx.device), bar:
        while run.epoch < len(plans):
            for cross, global_ in iterate_epoch(plans[run.epoch], run.batch, num_workers=num_workers, ctx=ctx):
                tasks = [(to_device(cross, ctx.device, "cross"), 1.0)]
                if global_ is not None:
                    tasks.append((to_device(global_, ctx.device, "global"), config.lambda_global))
                adversarial = plans[run.epoch].data.adversarial
                update_g = not adversarial or (run.step + 1) % config.generator_every == 0
                lr = config.lr * decay_factor(run.step, epoch_batches, config.lr_decay_epochs)
                for group in optimizer_g.param_groups:
                    group["lr"] = lr if adversarial else config.warmup_lr
                for group in optimizer_d.param_groups:
                    group["lr"] = lr
                snapshot = snapshot_buffers([generator, discriminator])
                terms = _iteration(
                    G=G,
                    D=D,
                    g_params=g_params,
                    d_params=d_params,
                    perceptual=perceptual,
                    tasks=tasks,
                    config=config,
                    update_g=update_g,
                    adversarial=adversarial,
                )
                values = average(torch.stack(list(terms.values())).detach().float(), ctx).tolist()
                losses = dict(zip(terms, values, strict=True))
                run.step, run.batch = run.step + 1, run.batch + 1
                if all(math.isfinite(v) for v in values):
                    if update_g:
                        optimizer_g.step()
                    if adversarial:
                        optimizer_d.step()
                        losses["d_loss"] = sum(losses[k] for k in DISCRIMINATOR_TERMS)
                    run.consecutive = 0
                    if update_g:
                        losses["g_loss"] = sum(losses[k] for k in GENERATOR_TERMS)
                    run.history.append({"step": run.step, **losses})
                    if ctx.is_main and on_step is not None:
                        on_step(run.step, losses)
                    bar.set_postfix(
                        d=f"{_latest(run.history, 'd_loss'):.3g}",
                        g=f"{_latest(run.history, 'g_loss'):.3g}",
                        refresh=False,
                    )
                else:  # no optimizer has stepped: restoring the buffers restores the last good state
                    restore_buffers([generator, discriminator], snapshot)
                    count_rollback(run, losses, max_consecutive_rollbacks, checkpoint_path, last_saved)
                G.zero_grad(set_to_none=True)
                D.zero_grad(set_to_none=True)
                if run.batch == len(plans[run.epoch]):
                    run.epoch, run.batch = run.epoch + 1, 0
                bar.update(1)
                if run.step % config.checkpoint_every == 0:
                    write_checkpoint()
        if last_saved != run.step:
            write_checkpoint()

    final: dict[str, float] = {}
    for entry in run.history:
        final |= {k: v for k, v in entry.items() if k != "step"}
    return TrainResult(
        steps=run.step, rollbacks=run.rollbacks, losses=final, history=run.history, resumed_from=resumed_from
    )


def decay_factor(step: int, epoch_batches: Sequence[int], decay_epochs: int) -> float:
    """The learning-rate factor of iteration `step` (0-based): 1, then down linearly over the last
    `decay_epochs` epochs' iterations, 1 at their first and 1/n at their last of n (SPADE's linear decay,
    per step rather than per epoch, so one decay epoch decays too). A function of the step alone, so a
    resumed run continues the same schedule."""
    total = sum(epoch_batches)
    start = total - sum(epoch_batches[len(epoch_batches) - decay_epochs :]) if decay_epochs else total
    if step < start:
        return 1.0
    return (total - step) / (total - start)


def _latest(history: list[dict[str, float]], key: str) -> float:
    for entry in reversed(history):
        if key in entry:
            return entry[key]
    return math.nan


def _iteration(
    *,
    G: nn.Module,  # the generator, DDP-wrapped under torchrun
    D: nn.Module,  # the discriminator, DDP-wrapped under torchrun
    d_params: Sequence[nn.Parameter],
    g_params: Sequence[nn.Parameter],
    perceptual: VGGPerceptualLoss | None,
    tasks: list[tuple[dict[str, Tensor], float]],  # (batch, weight): cross (1) and global (λ)
    config: TrainConfig,
    update_g: bool,
    adversarial: bool = True,
) -> dict[str, Tensor]:
    """Backward of L_G (when update_g) and L_D (when adversarial) for one iteration; returns the loss
    terms and gradient norms.

    The terms are returned weighted as they enter the totals (task weight, lambda_feat, lambda_vgg,
    lambda_l1, lambda_kl), so d_loss = d_real + d_fake and g_loss = g_gan + g_feat + g_vgg + g_l1 + g_kl.
    A warm-up iteration (not adversarial) runs no D and no VGG: only g_l1 (and g_kl) are nonzero, and there
    are no D terms.
    No optimizer steps.
    """
    with torch.set_grad_enabled(update_g):
        outputs = [G(batch["target_labels"], batch["exemplar"], batch["exemplar_labels"]) for batch, _ in tasks]

    terms: dict[str, Tensor] = {}
    norms: dict[str, Tensor] = {}
    if update_g:
        d_core = unwrap(D)  # no DDP here: D's weights are frozen, only G's gradients are reduced
        g = dict.fromkeys(GENERATOR_TERMS, torch.zeros((), device=outputs[0].image.device))
        with _frozen(d_params):
            for (batch, weight), out in zip(tasks, outputs, strict=True):
                task_terms = generator_objective(
                    fake=out.image,
                    real=batch["target"],
                    discriminated=_discriminate(d_core, out.image, batch) if adversarial else None,
                    perceptual=perceptual,
                    mu=out.mu,
                    logvar=out.logvar,
                    task_weight=weight,
                    mode=config.gan_loss,
                    lambda_feat=config.lambda_feat,
                    lambda_vgg=config.lambda_vgg,
                    lambda_l1=config.lambda_l1,
                    lambda_kl=config.lambda_kl,
                    batch_size=config.batch_size,  # the KL sums over the global batch, whatever the ranks
                )
                g = {key: g[key] + task_terms[key] for key in GENERATOR_TERMS}
            sum(g.values()).backward()
        terms |= g
        norms["g_grad_norm"] = _grad_norm(g_params, outputs[0].image.device)
    if not adversarial:
        return terms | norms

    d = dict.fromkeys(DISCRIMINATOR_TERMS, torch.zeros((), device=outputs[0].image.device))
    for (batch, weight), out in zip(tasks, outputs, strict=True):
        task_terms = discriminator_objective(
            discriminated=_discriminate(D, out.image.detach(), batch), task_weight=weight, mode=config.gan_loss
        )
        d = {key: d[key] + task_terms[key] for key in DISCRIMINATOR_TERMS}
    sum(d.values()).backward()
    norms["d_grad_norm"] = _grad_norm(d_params, outputs[0].image.device)
    return d | terms | norms
