"""The data `pipeline/train.py` gives each variant: which rows it trains on, and with which exemplars."""

import pandas as pd
import pytest
import torch
from pipeline.train import epoch_data

from egsynth.config import FilterConfig, ManifestConfig, Params, PretrainConfig, ScenesConfig, TrainConfig
from egsynth.data.cocostuff import CocoStuffLayout
from egsynth.data.embedded import write_embedded_dataset
from egsynth.data.filtering import filter_scenes
from egsynth.data.patches import build_manifests, write_manifests
from egsynth.models.variants import VARIANTS

PARAMS = Params(
    manifest=ManifestConfig(image_size=32, patch_size=16, enlarged_patch_size=24),
    train=TrainConfig(batch_size=2, phase1_epochs=2, phase2_epochs=1, warmup_epochs=1, lambda_l1=1.0),
)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """What the train stage reads: the scenes table, a parsed index (the ground truth as parse) and manifests."""
    root = tmp_path_factory.mktemp("repo")
    write_embedded_dataset(ScenesConfig(num_train=8, num_val=2, height=48, width=48, workers=1), root / "tree")
    scenes, _ = filter_scenes(CocoStuffLayout(root / "tree"), FilterConfig())
    scenes.to_parquet(root / "scenes.parquet", index=False)
    parsed = pd.DataFrame({"image_id": scenes["image_id"], "parsed_path": scenes["label_path"]})
    parsed.to_parquet(root / "parsed.parquet", index=False)
    write_manifests(build_manifests(scenes, PARAMS.manifest, PARAMS.train, PretrainConfig()), root / "manifests")
    return root


def epochs(repo, variant: str) -> list:
    """The train stage's `EpochData` of `variant`, phase 1 then phase 2."""
    inputs = {
        "manifests": repo / "manifests",
        "scenes_table": repo / "scenes.parquet",
        "parsed_index": repo / "parsed.parquet",
    }
    return epoch_data(PARAMS, variant, **inputs)


def batches(repo, variant: str) -> list[tuple[int, str, dict]]:
    """(epoch, task, batch) of every batch of every epoch of `variant`, in training order."""
    out = []
    for index, epoch in enumerate(epochs(repo, variant)):
        for task, dataset in (("cross", epoch.cross), ("global", epoch.global_)):
            if dataset is not None:
                loader = torch.utils.data.DataLoader(dataset, batch_size=PARAMS.train.batch_size)
                out += [(index, task, batch) for batch in loader]
    return out


def test_every_spade_vae_training_batch_reconstructs_its_targets_from_themselves(repo):
    """SPADE_VAE "is based on a self-reconstruction loss" (Sec. 4): exemplar = target, image and labels."""
    seen = batches(repo, "spade_vae")
    assert {epoch for epoch, _, _ in seen} == {0, 1, 2} and {task for _, task, _ in seen} == {"cross", "global"}
    for _, _, batch in seen:
        assert torch.equal(batch["exemplar"], batch["target"])
        assert torch.equal(batch["exemplar_labels"], batch["target_labels"])  # the parse is the ground truth here


def test_spade_vae_trains_on_the_targets_the_paper_variants_cross_reconstruct(repo):
    crossing = [(e, t, b) for e, t, b in batches(repo, "full") if t == "cross"]
    own = [(e, t, b) for e, t, b in batches(repo, "spade_vae") if t == "cross"]
    assert len(own) == len(crossing)
    for (_, _, a), (_, _, b) in zip(crossing, own, strict=True):
        assert torch.equal(a["image_id"], b["image_id"]) and torch.equal(a["target"], b["target"])
    assert any(not torch.equal(b["exemplar"], b["target"]) for _, _, b in crossing), "full crosses patches"


def test_the_warm_up_adds_patch_self_reconstruction_except_where_the_variant_has_none(repo):
    tasks = {
        variant: sorted({task for epoch, task, _ in batches(repo, variant) if epoch == 0})
        for variant in ("full", "no_global", "spade_vae")
    }
    assert tasks == {"full": ["cross", "global"], "no_global": ["cross"], "spade_vae": ["cross"]}


def test_phase_2_adds_global_rows_for_exactly_the_variants_with_the_global_task(repo):
    phase_2 = {name: epochs(repo, name)[PARAMS.train.phase1_epochs :] for name in VARIANTS}
    assert all(len(data) == PARAMS.train.phase2_epochs for data in phase_2.values())
    with_global = {name for name, data in phase_2.items() if all(epoch.global_ is not None for epoch in data)}
    assert with_global == {name for name, spec in VARIANTS.items() if spec.global_task}
    assert set(VARIANTS) - with_global == {"no_global"}
