"""Where the scene dataset lives: the descriptor the `scenes` stage writes and later stages read.

`data/raw/scenes/dataset.json` names the COCO-stuff tree to read. For the embedded dataset the tree
is `data/raw/scenes/` itself; for real COCO-stuff (`data.source: coco_stuff`) it is the user's
`data.root`, validated and digested but never copied into the DVC cache, so the descriptor (with
the annotation files' digests) is the stage's only output and the dependency later stages see.
"""

from __future__ import annotations

import json
from pathlib import Path

from egsynth.data.cocostuff import CocoStuffLayout

DESCRIPTOR_NAME = "dataset.json"


class DatasetError(ValueError):
    """A dataset tree that cannot be read; the message names the path and the problem."""


def validate_coco_stuff_root(root: Path) -> CocoStuffLayout:
    """The layout of a COCO-stuff tree at `root`, or a DatasetError listing what is missing."""
    tree = CocoStuffLayout(Path(root))
    if not tree.root.is_dir():
        raise DatasetError(f"{tree.root}: COCO-stuff root is not a directory")
    missing = tree.missing()
    if missing:
        listed = ", ".join(str(path.relative_to(tree.root)) for path in missing)
        raise DatasetError(
            f"{tree.root}: not a COCO-stuff tree, missing {listed} "
            "(expected images/{train2017,val2017}, stuffthingmaps/{train2017,val2017}, "
            "annotations/stuff_{train,val}2017.json and annotations/instances_{train,val}2017.json)"
        )
    return tree


def write_descriptor(scenes_dir: Path, *, source: str, root: Path, annotation_md5: dict[str, str]) -> None:
    """Write `dataset.json` into `scenes_dir` (which the caller writes atomically)."""
    descriptor = {"source": source, "root": str(root), "annotations": annotation_md5}
    (scenes_dir / DESCRIPTOR_NAME).write_text(json.dumps(descriptor, indent=2, sort_keys=True) + "\n")


def read_descriptor(scenes_dir: Path) -> tuple[str, CocoStuffLayout]:
    """(source, layout) of the dataset a `scenes` output points to; a relative root is relative to it."""
    path = Path(scenes_dir) / DESCRIPTOR_NAME
    try:
        descriptor = json.loads(path.read_text())
        source, root = descriptor["source"], Path(descriptor["root"])
    except FileNotFoundError:
        raise DatasetError(f"{path}: missing; run the scenes stage first (dvc repro scenes)") from None
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise DatasetError(f"{path}: not a dataset descriptor ({error})") from None
    return source, validate_coco_stuff_root(root if root.is_absolute() else Path(scenes_dir) / root)
