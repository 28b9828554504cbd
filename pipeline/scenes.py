"""Stage `scenes`: the scene dataset in COCO-stuff's layout, as `data/raw/scenes/`.

`data.source: embedded` renders the procedural dataset (docs/design.md, "The embedded default
dataset"); `coco_stuff` validates the real tree at `data.root` and records only a descriptor with
its annotation digests, so the dataset is never copied into the DVC cache.
"""

from pathlib import Path

from prefect import flow

from egsynth import provenance
from egsynth.config import Params
from egsynth.data import source
from egsynth.data.embedded import write_embedded_dataset
from egsynth.io import atomic_path
from pipeline._stage import run_stage, stage_paths, tracked_stage


@flow(name="scenes")
def scenes(params: Params) -> None:
    paths = stage_paths()
    with tracked_stage("scenes", params), atomic_path(paths["raw_scenes"], directory=True) as staging:
        if params.data.source == "embedded":
            write_embedded_dataset(params.scenes, staging)
            tree, root = source.validate_coco_stuff_root(staging), Path(".")
        else:
            tree = source.validate_coco_stuff_root(params.data.root.resolve())
            root = tree.root
        digests = {path.relative_to(tree.root).as_posix(): provenance.dvc_md5(path) for path in tree.annotation_files()}
        source.write_descriptor(staging, source=params.data.source, root=root, annotation_md5=digests)


if __name__ == "__main__":
    run_stage(scenes)
