"""Safe outputs: written atomically, all together, never over an input or a file DVC tracks.

docs/design.md, "Conventions": every stage writes only its declared outputs, atomically, so a crash
never leaves a half-written output that DVC or a later stage could mistake for a finished one, and
bad input loses nothing already written. A stage or command writes into a staging folder next to
each output, `.<name>.<pid>-<random>.tmp`, and renames it into place on success; the staging
folders a killed process left are removed by the next write of the same output (the pid in the
name tells a dead writer's folder from a live one's).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

import yaml
from PIL import Image


class BadInput(ValueError):
    """A user's file or path that a command cannot use; the message is one line naming it and the problem."""


class UnsafeOutput(BadInput):
    """An output path that would overwrite an input or a file DVC tracks; the message names both."""


DEFAULT_MAX_IMAGE_SIDE = 1024
"""Largest image side the commands read unless told otherwise (see `egsynth.synthesis.DEFAULT_MAX_SIDE`)."""


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _writer_alive(staging: Path) -> bool:
    """Whether the process that made the staging folder `.<name>.<pid>-<random>.tmp` still runs."""
    try:
        pid = int(staging.name.rsplit(".", 2)[-2].split("-", 1)[0])
    except ValueError:  # written before staging names held a pid
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_staging(target: Path | str) -> list[Path]:
    """Remove the staging folders of `target` whose writer is gone (a killed run's); returns them."""
    target = Path(target)
    if not target.parent.is_dir():
        return []
    stale = [p for p in target.parent.glob(f".{target.name}.*.tmp") if p.is_dir() and not _writer_alive(p)]
    for staging in stale:
        shutil.rmtree(staging, ignore_errors=True)
    return stale


@contextmanager
def atomic_path(target: Path | str, *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to `target`; on success it replaces `target` in one rename.

    With `directory=True` the temporary path is an empty directory to fill; otherwise it is a file
    path to write. On an exception the temporary path is removed and `target` is left untouched.
    """
    with atomic_paths([target], directory=directory) as (temporary,):
        yield temporary


@contextmanager
def atomic_paths(targets: Sequence[Path | str], *, directory: bool = False) -> Iterator[list[Path]]:
    """`atomic_path` for several outputs written together: all are replaced, only once every one was
    written without an exception, by renames one after the other (no computation between them), or none is.
    """
    targets = [Path(target) for target in targets]
    with ExitStack() as cleanup:
        stagings = []
        for target in targets:
            created = [parent for parent in (target.parent, *target.parent.parents) if not parent.exists()]
            target.parent.mkdir(parents=True, exist_ok=True)
            cleanup.push(_remover_on_failure(created))
            remove_stale_staging(target)
            staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}-", suffix=".tmp", dir=target.parent))
            cleanup.callback(shutil.rmtree, staging, ignore_errors=True)
            stagings.append(staging)
        temporaries = [s if directory else s / t.name for s, t in zip(stagings, targets, strict=True)]
        yield temporaries
        for target, temporary in zip(targets, temporaries, strict=True):
            if not temporary.exists():
                raise FileNotFoundError(f"{target}: the stage finished without writing it")
        for target, temporary in zip(targets, temporaries, strict=True):
            _remove(target)
            os.replace(temporary, target)


def _remover_on_failure(directories: list[Path]):
    """An exit callback that removes the (still empty) `directories`, innermost first, when an exception ends
    the write: a failed command leaves no directory it made for its outputs."""

    def remove(kind, error, traceback) -> bool:
        if kind is not None:
            for directory in directories:
                with suppress(OSError):
                    directory.rmdir()
        return False

    return remove


def write_json_atomic(target: Path | str, payload: Any) -> None:
    with atomic_path(target) as temporary:
        temporary.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")


def torch_load_problem(error: BaseException) -> str:
    """Why `torch.load(weights_only=True)` refused a file, in our words: torch's own message ends in advice to
    load it again with `weights_only=False`, which would run whatever code the file's pickle holds."""
    if "weights_only" in str(error) or "Weights only load failed" in str(error):
        return "it holds objects other than tensors and plain data, which are never unpickled (they could run code)"
    return f"truncated, or not written by torch.save ({type(error).__name__})"


# ---------------------------------------------------------------------------------------------
# inputs that would crash or exhaust the machine


def reading_error(path: Path, error: BaseException) -> BadInput:
    """A file Pillow could not open or decode, in one line naming it."""
    if isinstance(error, FileNotFoundError):
        return BadInput(f"{path}: file not found")
    if isinstance(error, IsADirectoryError):
        return BadInput(f"{path}: is a directory, not an image file")
    return BadInput(f"{path}: not a readable image ({' '.join(str(error).split()) or type(error).__name__})")


UNREADABLE = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)
"""What Pillow raises for a missing, truncated, corrupt or foreign file."""


def check_image_file(path: Path, *, max_side: int) -> None:
    """Refuse, from the header alone (Pillow decodes no pixel until asked), an image file that is missing,
    unreadable or larger than `max_side` px on a side: a small file can declare 8000x8000 pixels."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as error:
        raise BadInput(f"{path}: too large to read ({error})") from None
    except UNREADABLE as error:
        raise reading_error(path, error) from None
    if max(width, height) > max_side:
        raise BadInput(
            f"{path}: {width}x{height} is larger than {max_side} px a side (--max-side; memory grows with the pixels)"
        )


# ---------------------------------------------------------------------------------------------
# outputs that would destroy a file


def _dvc_root(path: Path) -> Path | None:
    """The nearest directory above `path` holding a `.dvc` directory: the DVC repo `path` is in."""
    return next((parent for parent in path.parents if (parent / ".dvc").is_dir()), None)


def _within(path: Path, out: Path) -> bool:
    return path == out or out in path.parents


def _yaml_outs(file: Path, base: Path) -> list[Path]:
    """The out paths a dvc.lock or .dvc file records, resolved against `base`."""
    try:
        data = yaml.safe_load(file.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return []
    entries = [data] if isinstance(data, dict) and "outs" in data else list((data or {}).get("stages", {}).values())
    return [
        Path(os.path.realpath(base / out["path"]))
        for entry in entries
        if isinstance(entry, dict)
        for out in entry.get("outs", [])
        if isinstance(out, dict) and isinstance(out.get("path"), str)
    ]


def dvc_tracked_out(path: Path | str) -> Path | None:
    """The DVC out that is `path` or holds it (a directory out), or None when DVC tracks no such file.

    Reads the repo's dvc.lock (every out of every stage that ran, foreach entries expanded), the outs
    dvc.yaml declares, and `X.dvc` files of `path` or a directory above it (`dvc add`).
    """
    path = Path(os.path.realpath(path))
    root = _dvc_root(path)
    if root is None:
        return None
    outs = _yaml_outs(root / "dvc.lock", root)
    outs += [Path(os.path.realpath(root / out)) for out in _declared_outs(root / "dvc.yaml")]
    for tracked in [path, *path.parents]:
        if tracked == root:
            break
        dvc_file = tracked.with_name(tracked.name + ".dvc")
        if dvc_file.is_file():
            outs += _yaml_outs(dvc_file, dvc_file.parent)
    return next((out for out in outs if _within(path, out)), None)


def _declared_outs(dvc_yaml: Path) -> list[str]:
    """The out paths dvc.yaml declares, plain or templated on the mappings of its `vars` (`${paths.parser}`);
    those templated on anything else (a foreach `${item}`, a params file) are in dvc.lock once they ran."""
    try:
        data = yaml.safe_load(dvc_yaml.read_text()) or {}
        stages, vars_ = data.get("stages", {}), data.get("vars", [])
    except (OSError, UnicodeDecodeError, yaml.YAMLError, AttributeError):
        return []
    found = []
    for stage in stages.values() if isinstance(stages, dict) else []:
        body = stage.get("do", stage) if isinstance(stage, dict) else {}
        for key in ("outs", "metrics", "plots"):
            for out in body.get(key, []) if isinstance(body, dict) else []:
                name = next(iter(out), None) if isinstance(out, dict) else out
                if isinstance(name, str):
                    found.append(name)
    plain = [name for name in found if "${" not in name]
    mappings = [item for item in vars_ if isinstance(item, dict)] if isinstance(vars_, list) else []
    return plain + _resolved([name for name in found if "${" in name], mappings)


def _resolved(templates: list[str], mappings: list[dict]) -> list[str]:
    """`templates` as DVC's own templating resolves them on `mappings`; the ones it cannot are left out."""
    if not templates or not mappings:
        return []
    from dvc.exceptions import DvcException  # imported only here: a command outside a pipeline never loads DVC
    from dvc.parsing.context import Context

    try:
        context = Context()
        for mapping in mappings:
            context.merge_update(Context(mapping))
    except DvcException:
        return []
    resolved = []
    for template in templates:
        with suppress(DvcException):
            value = context.resolve_str(template)
            if isinstance(value, str):
                resolved.append(value)
    return resolved


def check_outputs(outputs: Iterable[Path], inputs: Iterable[Path | None]) -> None:
    """Refuse, before any work, outputs that resolve (symlinks and `..` followed) to one of `inputs`, to
    another output, or to a file DVC tracks; UnsafeOutput names both paths."""
    real_inputs = {Path(os.path.realpath(p)): p for p in inputs if p is not None}
    seen: dict[Path, Path] = {}
    for output in outputs:
        real = Path(os.path.realpath(output))
        if real in real_inputs:
            raise UnsafeOutput(f"{output}: is the input {real_inputs[real]}; writing it would destroy that input")
        if real in seen:
            raise UnsafeOutput(f"{output}: is also the output {seen[real]}")
        seen[real] = output
        tracked = dvc_tracked_out(real)
        if tracked is not None:
            raise UnsafeOutput(f"{output}: DVC tracks {tracked} (an out of this repo); write the output elsewhere")
