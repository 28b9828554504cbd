"""Atomic outputs: a stage writes into a temporary sibling and renames it into place on success.

DESIGN.md, "Conventions": every stage writes only its declared outputs, atomically, so a crash
never leaves a half-written output that DVC or a later stage could mistake for a finished one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextmanager
def atomic_path(target: Path | str, *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to `target`; on success it replaces `target` in one rename.

    With `directory=True` the temporary path is an empty directory to fill; otherwise it is a file
    path to write. On an exception the temporary path is removed and `target` is left untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    temporary = staging if directory else staging / target.name
    try:
        yield temporary
        if not temporary.exists():
            raise FileNotFoundError(f"{target}: the stage finished without writing it")
        _remove(target)
        os.replace(temporary, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def write_json_atomic(target: Path | str, payload: Any) -> None:
    with atomic_path(target) as temporary:
        temporary.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
