"""The `egsynth` command line. Each module registers its commands on the one app."""

from egsynth.cli import (
    ablation,  # noqa: F401  (registers its commands)
    audit,  # noqa: F401  (registers its commands)
    data,  # noqa: F401  (registers its commands)
    demo,  # noqa: F401  (registers its commands)
    synthesis,  # noqa: F401  (registers its commands)
)
from egsynth.cli._app import app, fail

__all__ = ["app", "fail"]
