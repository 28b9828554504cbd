"""The transfer matrix of appendix B (Figs. 10, 12) and the figure writers of Sec. 4 (Figs. 4-9)."""

import numpy as np
import pandas as pd
import pytest
import torch
from einops import reduce
from PIL import Image

from egsynth.config import FiguresConfig
from egsynth.data.cocostuff import CATEGORIES, NUM_CLASSES
from egsynth.data.encoding import one_hot, to_image, to_label_indices
from egsynth.data.labels import UNLABELED_INDEX
from egsynth.evaluation.attention import FINEST_SCALE, TransferMatrix, dendrogram_features
from egsynth.evaluation.figures import (
    PALETTE,
    attention_maps,
    colorize_labels,
    dendrogram_figure,
    extrapolation_figure,
    interpolation_strip,
    loss_curves,
    qualitative_grid,
    swap_matrix,
    transfer_matrix_figure,
)
from egsynth.evaluation.showcase import variant_showcase
from egsynth.models.generator import build_generator
from egsynth.models.msca import AttentionRecord
from tests._models import TINY_MODEL

C = 5  # classes of the hand-built cases
NAMES = [category.name for category in CATEGORIES]


def blocky_indices(batch: int, height: int, width: int, *, classes: int, seed: int) -> torch.Tensor:
    """Class indices [B, H, W] in 4x4 blocks, every class of range(classes) present in every case."""
    generator = torch.Generator().manual_seed(seed)
    blocks = torch.stack([torch.randperm(16, generator=generator) % classes for _ in range(batch)])  # [B, 16]
    blocks = blocks.reshape(batch, 4, 4)
    return blocks.repeat_interleave(height // 4, dim=1).repeat_interleave(width // 4, dim=2)  # [B, H, W]


def labels(batch: int, size: int, *, seed: int, classes: int = C) -> torch.Tensor:
    return one_hot(blocky_indices(batch, size, size, classes=classes, seed=seed), C)  # [B, C, H, W]


def normalized_masks(c: torch.Tensor) -> torch.Tensor:
    """Each class mask [B, C, H, W] divided by its pixel count: α of label attention (the `no_att` ablation)."""
    return c / reduce(c, "b k h w -> b k 1 1", "sum").clamp_min(1)


def label_record(c2: torch.Tensor, c1: torch.Tensor, *, shift: int = 0, gate: torch.Tensor | None = None):
    """Map k reads exemplar class (k + shift) mod C and writes target class k."""
    alpha = normalized_masks(c2).roll(-shift, dims=1)  # [B, K = C, H2, W2]
    gate = torch.ones(c2.shape[0], C) if gate is None else gate
    return AttentionRecord(alpha=alpha, gate=gate, beta=c1)


def random_record(batch: int, k: int, size: int, seed: int) -> AttentionRecord:
    generator = torch.Generator().manual_seed(seed)
    alpha = torch.randn(batch, k, size * size, generator=generator).softmax(-1).reshape(batch, k, size, size)
    beta = torch.randn(batch, k, size, size, generator=generator).softmax(1)
    return AttentionRecord(alpha=alpha, gate=torch.rand(batch, k, generator=generator), beta=beta)


def png(path) -> Image.Image:
    assert path.stat().st_size > 0
    image = Image.open(path)
    image.load()
    assert image.format == "PNG"
    return image


def rgb(size: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def label_map(size: int, seed: int) -> np.ndarray:
    return blocky_indices(1, size, size, classes=NUM_CLASSES, seed=seed)[0].numpy().astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# the transfer matrix (appendix B)


def test_label_attention_transfers_every_class_to_itself():
    c2, c1 = labels(2, 16, seed=0), labels(2, 16, seed=1)
    matrix = TransferMatrix(num_classes=C)
    matrix.add(label_record(c2, c1), c2, c1)
    np.testing.assert_allclose(matrix.ratios(), np.eye(C), atol=1e-6)


def test_attention_reading_the_next_class_gives_the_permutation():
    c2, c1 = labels(2, 16, seed=0), labels(2, 16, seed=1)
    matrix = TransferMatrix(num_classes=C)
    matrix.add(label_record(c2, c1, shift=1), c2, c1)
    permutation = np.zeros((C, C))
    permutation[(np.arange(C) + 1) % C, np.arange(C)] = 1  # target class t receives exemplar class t + 1
    np.testing.assert_allclose(matrix.ratios(), permutation, atol=1e-6)


def test_columns_of_present_target_classes_sum_to_one_and_absent_ones_are_zero():
    c2 = labels(3, 16, seed=2)
    c1 = labels(3, 16, seed=3, classes=C - 1)  # the last class never occurs in a target
    matrix = TransferMatrix(num_classes=C)
    matrix.add(random_record(3, 4, 16, seed=4), c2, c1)
    columns = matrix.ratios().sum(axis=0)
    np.testing.assert_allclose(columns[: C - 1], 1.0, atol=1e-6)
    assert columns[C - 1] == 0


def test_a_map_switched_off_by_feature_masking_transfers_nothing():
    c2, c1 = labels(1, 16, seed=0), labels(1, 16, seed=1)
    gate = torch.ones(1, C)
    gate[0, 2] = 0.0  # Eq. 6 masks map 2, the only one writing target class 2
    matrix = TransferMatrix(num_classes=C)
    matrix.add(label_record(c2, c1, gate=gate), c2, c1)
    assert matrix.mass[:, 2].sum() == 0
    np.testing.assert_allclose(np.delete(np.delete(matrix.ratios(), 2, 0), 2, 1), np.eye(C - 1), atol=1e-6)


def test_accumulating_two_batches_equals_one_batch_of_both():
    c2, c1 = labels(4, 16, seed=5), labels(4, 16, seed=6)
    record = random_record(4, 3, 16, seed=7)
    whole, parts = TransferMatrix(num_classes=C), TransferMatrix(num_classes=C)
    whole.add(record, c2, c1)
    for part in (slice(0, 1), slice(1, 4)):
        sub = AttentionRecord(alpha=record.alpha[part], gate=record.gate[part], beta=record.beta[part])
        parts.add(sub, c2[part], c1[part])
    np.testing.assert_allclose(parts.mass, whole.mass, rtol=1e-6)
    np.testing.assert_allclose(parts.ratios(), whole.ratios(), rtol=1e-6)
    np.testing.assert_array_equal(parts.frequency, whole.frequency)


def test_labels_are_resized_to_the_attention_scale():
    c2, c1 = labels(2, 16, seed=0), labels(2, 16, seed=1)
    coarse = TransferMatrix(num_classes=C)
    coarse.add(label_record(c2, c1), c2.repeat_interleave(2, -1).repeat_interleave(2, -2), c1)
    np.testing.assert_allclose(coarse.ratios(), np.eye(C), atol=1e-6)


def test_top_classes_are_the_most_frequent_present_ones():
    indices = torch.zeros(1, 8, 8, dtype=torch.long)
    indices[0, :, :5] = 3  # 40 pixels of class 3, 24 of class 0, none of the others
    c = one_hot(indices, C)
    matrix = TransferMatrix(num_classes=C)
    matrix.add(label_record(c, c), c, c)
    assert matrix.top_classes(3).tolist() == [3, 0]


def test_a_record_without_attention_is_refused():
    c = labels(1, 8, seed=0)
    with pytest.raises(ValueError, match="attention"):
        TransferMatrix(num_classes=C).add(AttentionRecord(alpha=None, gate=None, beta=None), c, c)


def test_dendrogram_features_put_each_rows_second_largest_value_on_the_diagonal():
    ratios = np.random.default_rng(0).random((6, 6))
    features = dendrogram_features(ratios)
    np.testing.assert_array_equal(np.diag(features), np.sort(ratios, axis=1)[:, -2])
    off_diagonal = ~np.eye(6, dtype=bool)
    np.testing.assert_array_equal(features[off_diagonal], ratios[off_diagonal])
    assert not np.shares_memory(features, ratios)


# ---------------------------------------------------------------------------------------------
# colors


def test_colorize_labels_is_deterministic_distinct_and_black_where_unlabeled():
    indices = np.append(np.arange(NUM_CLASSES), UNLABELED_INDEX).astype(np.uint8)[None, :]  # [1, C + 1]
    colors = colorize_labels(indices)[0]  # [C + 1, 3]
    np.testing.assert_array_equal(colorize_labels(indices)[0], colors)
    assert len({tuple(color) for color in colors[:NUM_CLASSES]}) == NUM_CLASSES
    assert colors[-1].tolist() == [0, 0, 0]
    assert colors[:NUM_CLASSES].max(axis=1).min() > 100  # no class is near black
    np.testing.assert_array_equal(PALETTE[:NUM_CLASSES], colors[:NUM_CLASSES])


# ---------------------------------------------------------------------------------------------
# figures


def test_qualitative_grid_widens_with_its_columns(tmp_path):
    def grid(columns: int):
        rows = [
            {f"column {j}": (label_map(32, i + j) if j == 0 else rgb(32, i + j)) for j in range(columns)}
            for i in range(2)
        ]
        return png(qualitative_grid(rows, tmp_path / f"grid{columns}.png", title="comparison"))

    narrow, wide = grid(3), grid(6)
    assert wide.width > 1.6 * narrow.width
    assert abs(wide.height - narrow.height) < 0.15 * narrow.height
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid3.png", "grid6.png"]  # nothing staged is left


def test_qualitative_grid_needs_the_same_columns_in_every_row(tmp_path):
    with pytest.raises(AssertionError, match="columns"):
        qualitative_grid([{"a": rgb(8, 0)}, {"b": rgb(8, 1)}], tmp_path / "grid.png", title="t")


def test_swap_matrix_of_six_scenes_is_about_square(tmp_path):
    structures = [label_map(32, i) for i in range(6)]
    styles = [rgb(32, 10 + i) for i in range(6)]
    outputs = [[rgb(32, 100 + 6 * i + j) for j in range(6)] for i in range(6)]
    image = png(swap_matrix(structures, styles, outputs, tmp_path / "swap.png", diagonal_is_self=True))
    assert 0.8 < image.width / image.height < 1.25


def test_attention_maps_lay_k_map_pairs_side_by_side(tmp_path):
    k = 8
    record = random_record(1, k, 16, seed=0)
    image = png(
        attention_maps(
            rgb(32, 0),
            label_map(32, 1),
            rgb(32, 2),
            record.alpha[0].numpy(),
            record.beta[0].numpy(),
            tmp_path / "attention.png",
            gate=record.gate[0].numpy(),
            exemplar_labels=label_map(32, 3),
        )
    )
    assert image.width > 3 * image.height  # 2 rows of K + 2 panels


def test_interpolation_strip_has_the_exemplars_at_both_ends(tmp_path):
    ts = [0.0, 0.25, 0.5, 0.75, 1.0]
    rows = [[rgb(32, 10 * i + j) for j in range(len(ts) + 2)] for i in range(2)]
    image = png(interpolation_strip(rows, ts, tmp_path / "style.png", title="style interpolation"))
    assert image.width > 2.5 * image.height
    spatial = png(
        interpolation_strip(
            [[rgb(32, 0), rgb(32, 1), rgb(32, 2)]],
            None,
            tmp_path / "spatial.png",
            title="spatial interpolation",
            target_labels=[label_map(32, 3)],
        )
    )
    assert spatial.width > 2.5 * spatial.height
    with pytest.raises(AssertionError, match="images"):
        interpolation_strip([[rgb(32, 0)] * 3], ts, tmp_path / "bad.png", title="t")


def test_extrapolation_figure_shows_three_equal_panels(tmp_path):
    image = png(extrapolation_figure(rgb(16, 0), label_map(64, 1), rgb(64, 2), tmp_path / "extrapolation.png"))
    assert 2.2 < image.width / image.height < 3.8


def test_transfer_matrix_and_dendrogram_figures_show_the_top_classes(tmp_path):
    rng = np.random.default_rng(0)
    ratios = rng.random((NUM_CLASSES, NUM_CLASSES)) * (rng.random((NUM_CLASSES, NUM_CLASSES)) < 0.05)
    ratios /= ratios.sum(axis=0, keepdims=True)
    frequency = rng.integers(0, 1000, NUM_CLASSES)
    square = png(transfer_matrix_figure(ratios, NAMES, tmp_path / "transfer.png", frequency=frequency, top=20))
    assert 0.7 < square.width / square.height < 1.5
    tree = png(dendrogram_figure(dendrogram_features(ratios), NAMES, tmp_path / "tree.png", frequency=frequency))
    assert tree.height > tree.width * 0.8  # 25 leaves, one per line


def test_loss_curves_draw_one_panel_per_loss(tmp_path):
    steps = np.arange(1, 201)
    rng = np.random.default_rng(0)

    def run(offset: float) -> pd.DataFrame:
        frame = pd.DataFrame({"step": steps, "d_real": rng.random(200) + offset, "d_fake": rng.random(200)})
        frame["d_loss"] = frame["d_real"] + frame["d_fake"]
        g_steps = steps % 2 == 0  # G updates every other step: its terms are empty elsewhere
        for term in ("g_gan", "g_feat", "g_vgg"):
            frame[term] = np.where(g_steps, rng.random(200) + offset, np.nan)
        frame["g_kl"] = np.where(g_steps, 0.0, np.nan)
        frame["g_loss"] = frame[["g_gan", "g_feat", "g_vgg"]].sum(axis=1, min_count=3)
        return frame

    image = png(loss_curves({"full": run(1.0), "gap": run(0.0)}, tmp_path / "losses.png"))
    assert image.width > image.height  # 8 informative losses: two rows of four panels


# ---------------------------------------------------------------------------------------------
# end to end: a tiny trained-shape generator's finest attention


def test_finest_attention_of_a_generator_feeds_the_transfer_matrix_and_fig6(tmp_path):
    generator = build_generator("full", TINY_MODEL).eval()
    c1 = one_hot(blocky_indices(2, 32, 32, classes=6, seed=0))  # [2, 171, 32, 32]
    c2 = one_hot(blocky_indices(2, 32, 32, classes=6, seed=1) + 3)
    x2 = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        output = generator(c1, x2, c2)
    record = output.attention[FINEST_SCALE]
    assert record.alpha.shape == (2, 2, 32, 32) and record.beta.shape == (2, 2, 32, 32)  # scale 0: full size

    matrix = TransferMatrix()
    matrix.add(record, c2, c1)
    ratios = matrix.ratios()
    columns = ratios.sum(axis=0)
    np.testing.assert_allclose(columns[:6], 1.0, atol=1e-5)  # target classes 0..5
    assert (columns[6:] == 0).all()
    assert (ratios[:3].sum() == 0) and np.allclose(ratios[3:9].sum(axis=0)[:6], 1.0)  # exemplar classes 3..8
    assert set(matrix.top_classes(20).tolist()) == set(range(9))

    path = attention_maps(
        to_image(x2[0]),
        to_label_indices(c1[0]),
        to_image(output.image[0]),
        record.alpha[0].numpy(),
        record.beta[0].numpy(),
        tmp_path / "attention.png",
        gate=record.gate[0].numpy(),
        exemplar_labels=to_label_indices(c2[0]),
    )
    png(path)
    png(transfer_matrix_figure(ratios, NAMES, tmp_path / "transfer.png", frequency=matrix.frequency))


def test_an_attending_variants_showcase_needs_the_transfer_matrix_of_its_evaluation(tmp_path):
    with pytest.raises(ValueError, match="transfer matrix"):
        variant_showcase(
            build_generator("full", TINY_MODEL),
            pd.DataFrame(),
            pd.DataFrame(),
            transfer=None,
            config=FiguresConfig(),
            image_size=32,
            device=torch.device("cpu"),
            out=tmp_path,
        )
    assert not any(tmp_path.iterdir())  # refused before writing anything
