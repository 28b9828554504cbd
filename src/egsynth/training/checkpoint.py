"""Resumable training checkpoints (docs/design.md, "Conventions": checkpoints).

A checkpoint is one `torch.save`d dict, written atomically (temporary sibling + rename, via
`egsynth.io.atomic_path`), so a run killed while saving leaves the previous checkpoint intact. It
holds G, D, both optimizers, the position (step, epoch, batch), every RNG state (torch CPU and CUDA,
numpy, python `random`) and the params it was trained with plus their hash. It contains only
tensors, numbers, strings, lists and dicts, so it loads with `torch.load(weights_only=True)`: no
pickled code runs when a checkpoint is read.

`load_checkpoint` refuses a checkpoint whose params differ from the current ones, with one message
naming every differing key as `old -> new`: resuming under other params would silently train a
model that none of them describes.

A stage names its checkpoint by `checkpoint_name`: the params hash and a digest of the md5s DVC
records for the stage's deps. Params alone are not enough: after a change to the model or training
code the old weights belong to another program, and resuming them (or failing on their state dict)
is wrong either way. Every dep counts, not only the code: the pretrained weights are the product of
the pretraining code, and a run resumed after a data change would return the old generator
(a finished checkpoint trains no further). So a checkpoint is resumed exactly when DVC would find
the stage's inputs unchanged; `discard_other_checkpoints` deletes the rest, naming each and why.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import random
import re
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from egsynth.config import canonical_params, flatten_params, params_hash
from egsynth.io import atomic_path, torch_load_problem

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1
"""Version of the checkpoint layout; a checkpoint of another version is refused."""

REQUIRED_KEYS = ("generator", "discriminator", "optimizer_g", "optimizer_d", "step", "epoch", "batch", "rng", "params")
"""What `save_checkpoint` needs in `state`; it adds `format` and `params_hash` itself."""

_ABSENT = "<absent>"

# ----------------------------------------------------------------------------
# errors


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from; the message names the file and the problem."""


class CheckpointParamsMismatch(CheckpointError):
    """The checkpoint was written under other params; `differences` maps each dotted key to (old, new)."""

    def __init__(self, message: str, *, differences: dict[str, tuple[Any, Any]]):
        super().__init__(message)
        self.differences = differences


# ----------------------------------------------------------------------------
# params


def params_differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Dotted key -> (old, new) for every leaf that differs; a missing leaf reads `<absent>`."""
    flat_old, flat_new = flatten_params(canonical_params(old)), flatten_params(canonical_params(new))
    return {
        key: (flat_old.get(key, _ABSENT), flat_new.get(key, _ABSENT))
        for key in sorted(flat_old.keys() | flat_new.keys())
        if flat_old.get(key, _ABSENT) != flat_new.get(key, _ABSENT)
    }


# ----------------------------------------------------------------------------
# RNG states, as tensors and plain numbers (weights_only-loadable)


def capture_rng_state(device: torch.device | str | None = None) -> dict[str, Any]:
    """Every RNG the training step may draw from: torch CPU, numpy, python, and `device`'s when it is a GPU.

    Only the training device's CUDA generator is stored (not `get_rng_state_all`, which would open a
    context on every GPU of the machine from every rank).
    """
    device = torch.device(device) if device is not None else None
    kind, keys, position, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": [torch.cuda.get_rng_state(device)] if device is not None and device.type == "cuda" else [],
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "python": {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss_next": gauss_next},
    }


def restore_rng_state(state: Mapping[str, Any], device: torch.device | str | None = None) -> None:
    """Inverse of `capture_rng_state`; a stored CUDA state goes to `device` when it is a GPU."""
    torch.set_rng_state(state["torch"])
    device = torch.device(device) if device is not None else None
    if state["cuda"] and device is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"][0], device)
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            numpy_state["kind"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["position"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    python_state = state["python"]
    random.setstate((python_state["version"], tuple(python_state["internal"].tolist()), python_state["gauss_next"]))


def restores_global_rng_state(train: Callable) -> Callable:
    """Decorate a training function taking `device=`: the global RNGs it seeds and draws from (torch on
    the CPU and `device`, numpy, python `random`) are as before the call when it returns or raises, so the
    caller's own random draws do not depend on whether it trained."""

    @functools.wraps(train)
    def wrapper(*args: Any, device: torch.device | str, **kwargs: Any) -> Any:
        saved = capture_rng_state(device)
        try:
            return train(*args, device=device, **kwargs)
        finally:
            restore_rng_state(saved, device)

    return wrapper


# ----------------------------------------------------------------------------
# module state without frozen weights


def trainable_state_dict(module: nn.Module) -> dict[str, Tensor]:
    """`module.state_dict()` minus its frozen parameters (requires_grad False, e.g. the VGG-19 backbone).

    Frozen weights are rebuilt from the params (`model.backbone`, `model.seed`) and checked by
    `frozen_digest`, so checkpoints stay small (VGG-19 alone is ~50 MB).
    """
    frozen = {name for name, p in module.named_parameters() if not p.requires_grad}
    return {name: t for name, t in module.state_dict().items() if name not in frozen}


def load_trainable_state_dict(module: nn.Module, state: Mapping[str, Tensor], *, what: str) -> None:
    """Load a `trainable_state_dict`; every key but the frozen parameters' must match exactly."""
    frozen = {name for name, p in module.named_parameters() if not p.requires_grad}
    result = module.load_state_dict(dict(state), strict=False)
    missing = [key for key in result.missing_keys if key not in frozen]
    if missing or result.unexpected_keys:
        raise CheckpointError(
            f"the checkpoint's {what} does not match the model: missing {missing[:5]}, "
            f"unexpected {result.unexpected_keys[:5]}"
        )


def frozen_digest(module: nn.Module) -> str:
    """sha256 over the names and bytes of the frozen parameters (empty string when there are none)."""
    digest = hashlib.sha256()
    found = False
    for name, p in module.named_parameters():
        if not p.requires_grad:
            found = True
            digest.update(name.encode())
            digest.update(p.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest() if found else ""


# ----------------------------------------------------------------------------
# save / load


def remove_stale_temporaries(path: Path | str) -> None:
    """Remove the staging folders `atomic_path` leaves next to `path` when a save was killed midway."""
    path = Path(path)
    if path.parent.is_dir():
        for staging in path.parent.glob(f".{path.name}.*.tmp"):
            shutil.rmtree(staging, ignore_errors=True)


def checkpoint_name(params: Mapping[str, Any], deps: Mapping[str, str]) -> str:
    """`<params hash[:16]>-<deps digest[:16]>.pt`, the file of one (params, deps) pair.

    `deps` maps each dep of the stage (path as in dvc.yaml) to the md5 DVC records for it in dvc.lock.
    """
    return f"{params_hash(params)[:16]}-{params_hash(deps)[:16]}.pt"


_NAME = re.compile(r"(?P<params>[0-9a-f]{16})-(?P<deps>[0-9a-f]{16})\.pt")


def _other_key(name: str, current: re.Match) -> str:
    """Why the checkpoint file `name` is not the current one: which half of its name differs."""
    found = _NAME.fullmatch(name)
    if found is None:
        return "its name holds no deps digest (written before checkpoints were keyed by their deps)"
    other_params, other_deps = (found[part] != current[part] for part in ("params", "deps"))
    if other_params and other_deps:
        return "written under other params and other deps"
    if other_params:
        return "written under other params"
    return "written under the same params by other deps (code, data or pretrained weights changed since)"


def discard_other_checkpoints(keep: Path | str) -> list[Path]:
    """Delete every checkpoint next to `keep` (and its unfinished saves) but `keep`'s own; log each and why.

    The stage's checkpoint directory is a persistent DVC out: without this it would grow by one file
    per (params, deps) pair ever run, none of them resumable by the current run.
    """
    keep = Path(keep)
    current = _NAME.fullmatch(keep.name)
    assert current is not None, f"discard_other_checkpoints: {keep.name} is not a checkpoint_name"
    if not keep.parent.is_dir():
        return []
    discarded = []
    for path in sorted(keep.parent.glob("*.pt")):
        if path.name != keep.name:
            why = _other_key(path.name, current)
            log.warning("discarding checkpoint %s: %s; this run's is %s", path, why, keep.name)
            path.unlink()
            discarded.append(path)
    for staging in sorted(keep.parent.glob(".*.pt.*.tmp")):
        if not staging.name.startswith(f".{keep.name}."):
            log.warning("discarding %s: an unfinished save of another checkpoint", staging)
            shutil.rmtree(staging, ignore_errors=True)
            discarded.append(staging)
    return discarded


def save_checkpoint(path: Path | str, state: Mapping[str, Any]) -> None:
    """Write `state` (see REQUIRED_KEYS) to `path` atomically, adding the format version and params hash."""
    missing = [key for key in REQUIRED_KEYS if key not in state]
    assert not missing, f"save_checkpoint: state lacks {missing}"
    payload = dict(state)
    payload["params"] = canonical_params(state["params"])
    payload["params_hash"] = params_hash(payload["params"])
    payload["format"] = CHECKPOINT_FORMAT
    with atomic_path(path) as temporary:
        torch.save(payload, temporary)


def load_checkpoint(
    path: Path | str,
    *,
    params: Mapping[str, Any],  # the current params; the checkpoint's must be equal
    map_location: str | torch.device = "cpu",
) -> dict[str, Any]:
    """Read a checkpoint with `torch.load(weights_only=True)` and check it was written under `params`.

    Raises:
        CheckpointError: unreadable file or another format version.
        CheckpointParamsMismatch: the params differ; the message names each key as `old -> new`.
    """
    path = Path(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # any unreadable file gets one message naming it
        raise CheckpointError(f"checkpoint {path} cannot be read: {torch_load_problem(error)}") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"checkpoint {path} has format {found!r}, expected {CHECKPOINT_FORMAT}")
    if state["params_hash"] != params_hash(params):
        differences = params_differences(state["params"], params)
        listed = "; ".join(f"{key}: {old!r} -> {new!r}" for key, (old, new) in differences.items())
        raise CheckpointParamsMismatch(
            f"checkpoint {path} was written with other params, refusing to resume ({listed}); "
            f"restore those params, or delete the checkpoint to train from scratch",
            differences=differences,
        )
    return state
