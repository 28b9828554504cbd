"""The paper's figures as PNGs (Sec. 4, Figs. 4-9; appendix B, Figs. 10 and 12) and the training curves.

Every function draws one figure with matplotlib's Agg canvas (no pyplot, so no global backend
state), writes it atomically (`egsynth.io.atomic_path`) and returns its path. Images are uint8
RGB [H, W, 3]; label maps are uint8 class indices [H, W] (`UNLABELED_INDEX` = 255 where unlabeled),
drawn with `colorize_labels`; `egsynth.data.encoding` converts the models' tensors into both.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import hsv_to_rgb
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from PIL import Image

from egsynth.data.cocostuff import NUM_CLASSES
from egsynth.data.labels import UNLABELED_INDEX
from egsynth.io import atomic_path

PANEL = 1.9  # inches per image panel
DPI = 110
HEADER_WIDTH = 18  # characters per line of a column header before it wraps
HEAT_MAP = "turbo"  # attention heat maps (Fig. 6)
RATIO_MAP = "jet"  # the transfer matrix, blue (0) to red (1) as in Fig. 10
LOSS_ORDER = (
    "g_loss",
    "d_loss",
    "g_gan",
    "g_feat",
    "g_vgg",
    "g_l1",
    "g_kl",
    "d_real",
    "d_fake",
    "g_grad_norm",
    "d_grad_norm",
)
"""Panel order of `loss_curves`: the totals, their terms, the gradient norms (`training/gan.py`); others follow."""

# ---------------------------------------------------------------------------------------------
# helpers


def _palette() -> np.ndarray:
    """uint8 [256, 3]: golden-ratio hue steps with three saturations and three values, so neighbouring
    class indices (often related classes) get far-apart colors; black for every non-class index."""
    index = np.arange(NUM_CLASSES)
    hue = (index * (math.sqrt(5) - 1) / 2) % 1.0  # [C]
    saturation = np.array([0.85, 0.55, 0.7])[index % 3]  # [C]
    value = np.array([0.95, 0.72, 0.84])[(index // 3) % 3]  # [C]
    palette = np.zeros((256, 3), dtype=np.uint8)  # [256, 3]
    palette[:NUM_CLASSES] = np.round(hsv_to_rgb(np.stack([hue, saturation, value], axis=-1)) * 255)
    return palette


PALETTE = _palette()


def colorize_labels(indices: np.ndarray) -> np.ndarray:
    """Class indices uint8 [H, W] -> uint8 RGB [H, W, 3], one fixed color per class, black where unlabeled."""
    assert indices.ndim == 2 and indices.dtype == np.uint8, f"expects uint8 indices [H, W], got {indices.dtype}"
    valid = (indices < NUM_CLASSES) | (indices == UNLABELED_INDEX)
    assert valid.all(), f"label indices {np.unique(indices[~valid]).tolist()} are no class nor {UNLABELED_INDEX}"
    return PALETTE[indices]  # [H, W, 3]


def _rgb(image: np.ndarray) -> np.ndarray:
    """An image uint8 [H, W, 3] as is, or a label map uint8 [H, W] colorized."""
    if image.ndim == 2:
        return colorize_labels(image)
    assert image.ndim == 3 and image.shape[-1] == 3 and image.dtype == np.uint8, (
        f"expects uint8 RGB [H, W, 3] or label indices [H, W], got {image.dtype} {image.shape}"
    )
    return image


def _header(text: str) -> str:
    return textwrap.fill(text, HEADER_WIDTH)


def _blank(ax: Axes) -> None:
    """An image panel: no ticks, no frame (a frame can be drawn back by `_frame`)."""
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def _show(ax: Axes, image: np.ndarray, *, title: str | None = None) -> None:
    ax.imshow(_rgb(image), interpolation="nearest")
    _blank(ax)
    if title is not None:
        ax.set_title(_header(title), fontsize=9)


def _frame(ax: Axes, color: str) -> None:
    for spine in ax.spines.values():
        spine.set_visible(True)
        spine.set_color(color)
        spine.set_linewidth(3)


def _resize(heat: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A float map [h, w] bilinearly resized to size (H, W)."""
    if heat.shape == size:
        return heat
    resized = Image.fromarray(heat.astype(np.float32)).resize((size[1], size[0]), Image.Resampling.BILINEAR)
    return np.asarray(resized)  # [H, W]


def _gray(image: np.ndarray) -> np.ndarray:
    """Luminance [H, W] in [0, 1] of an image or a colorized label map: the backdrop of a heat map."""
    return _rgb(image).astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32) / 255


def _top(score: np.ndarray, top: int) -> np.ndarray:
    """Indices of the (at most) `top` largest positive scores, largest first."""
    order = np.argsort(-score, kind="stable")
    return order[: min(top, int((score > 0).sum()))]


def _save(figure: Figure, path: Path | str) -> Path:
    path = Path(path)
    with atomic_path(path) as staging:
        figure.savefig(staging, format="png", dpi=DPI, bbox_inches="tight", pad_inches=0.08)
    return path


# ---------------------------------------------------------------------------------------------
# Figs. 4-9: images


def qualitative_grid(rows: Sequence[Mapping[str, np.ndarray]], path: Path | str, *, title: str) -> Path:
    """Fig. 4: one row per case; each row maps column name -> image or label map, the names head the columns
    (e.g. target labels, parsed exemplar labels, exemplar, one column per variant, ground truth)."""
    assert rows, "expects at least one row"
    columns = list(rows[0])
    assert all(list(row) == columns for row in rows), f"every row needs the columns {columns}, in that order"
    figure = Figure(figsize=(PANEL * len(columns), PANEL * len(rows) + 0.6), layout="constrained")
    axes = figure.subplots(len(rows), len(columns), squeeze=False)
    for r, row in enumerate(rows):
        for c, (name, image) in enumerate(row.items()):
            _show(axes[r, c], image, title=name if r == 0 else None)
    figure.suptitle(title)
    return _save(figure, path)


def swap_matrix(
    structures: Sequence[np.ndarray],
    styles: Sequence[np.ndarray],
    outputs: Sequence[Sequence[np.ndarray]],
    path: Path | str,
    *,
    title: str = "style-structure swapping",
    diagonal_is_self: bool = False,
) -> Path:
    """Fig. 9: the exemplars (styles) along the first row, the target label maps (structures) down the
    first column, cell (i, j) the output of structure i in style j. `diagonal_is_self`: structure i and
    style i come from the same scene, so the diagonal is self-reconstruction and gets red frames."""
    assert len(outputs) == len(structures) and all(len(row) == len(styles) for row in outputs), (
        f"expects outputs[i structure][j style] of {len(structures)} x {len(styles)}"
    )
    n, m = len(structures), len(styles)
    figure = Figure(figsize=(PANEL * (m + 1), PANEL * (n + 1) + 0.6), layout="constrained")
    axes = figure.subplots(n + 1, m + 1, squeeze=False)
    axes[0, 0].set_axis_off()
    axes[0, 0].text(0.5, 0.5, "style →\nstructure ↓", ha="center", va="center", fontsize=10)
    for j, style in enumerate(styles):
        _show(axes[0, j + 1], style, title=f"exemplar {j + 1}")
    for i, structure in enumerate(structures):
        _show(axes[i + 1, 0], structure)
        axes[i + 1, 0].set_ylabel(f"target {i + 1}", fontsize=9)
        for j, output in enumerate(outputs[i]):
            _show(axes[i + 1, j + 1], output)
            if diagonal_is_self and i == j:
                _frame(axes[i + 1, j + 1], "red")
    figure.suptitle(title)
    return _save(figure, path)


def attention_maps(
    exemplar: np.ndarray,
    target_labels: np.ndarray,
    output: np.ndarray,
    record_alpha: np.ndarray,
    record_beta: np.ndarray,
    path: Path | str,
    *,
    gate: np.ndarray | None = None,
    exemplar_labels: np.ndarray | None = None,
    title: str = "spatial and channel attention",
) -> Path:
    """Fig. 6: the exemplar side on the top row, the target side on the bottom row. Left, the inputs and
    the output; then per map k, α_k (Eq. 4, scaled to its maximum) over the exemplar above β_k (Eq. 7,
    0..1) over the target labels, so a column shows where map k reads and where it writes. `gate` [K]
    (Eq. 6) goes into the column headers; `exemplar_labels` (the parsed c̃2) fills the top-left gap."""
    k = record_alpha.shape[0]
    assert record_alpha.ndim == record_beta.ndim == 3 and record_beta.shape[0] == k, (
        f"expects α [K, H2, W2] and β [K, H1, W1], got {record_alpha.shape} and {record_beta.shape}"
    )
    assert gate is None or gate.shape == (k,), f"expects a gate [{k}]"
    figure = Figure(figsize=(PANEL * (k + 2), PANEL * 2 + 0.7), layout="constrained")
    axes = figure.subplots(2, k + 2, squeeze=False)
    _show(axes[0, 0], exemplar, title="exemplar x₂")
    if exemplar_labels is None:
        axes[0, 1].set_axis_off()
    else:
        _show(axes[0, 1], exemplar_labels, title="exemplar labels c̃₂")
    _show(axes[1, 0], target_labels, title="target labels c₁")
    _show(axes[1, 1], output, title="output x̂")
    exemplar_gray, target_gray = _gray(exemplar), _gray(target_labels)
    for i in range(k):
        alpha = _resize(record_alpha[i], exemplar_gray.shape)  # [H2, W2]
        beta = _resize(record_beta[i], target_gray.shape)  # [H1, W1]
        header = f"k = {i + 1}" if gate is None else f"k = {i + 1}, g = {gate[i]:.2f}"
        for ax, backdrop, heat in (
            (axes[0, i + 2], exemplar_gray, alpha / max(float(alpha.max()), 1e-12)),
            (axes[1, i + 2], target_gray, beta),
        ):
            ax.imshow(backdrop, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            heat_image = ax.imshow(heat, cmap=HEAT_MAP, vmin=0, vmax=1, alpha=0.6, interpolation="nearest")
            _blank(ax)
        axes[0, i + 2].set_title(header, fontsize=9)
    axes[0, 2].set_ylabel("α_k over x₂", fontsize=9)
    axes[1, 2].set_ylabel("β_k over c₁", fontsize=9)
    for row, label in ((0, "α_k / max α_k"), (1, "β_k")):
        figure.colorbar(heat_image, ax=axes[row, 2:].tolist(), shrink=0.85, pad=0.01, aspect=12, label=label)
    figure.suptitle(title)
    return _save(figure, path)


def interpolation_strip(
    rows: Sequence[Sequence[np.ndarray]],
    ts: Sequence[float] | None,
    path: Path | str,
    *,
    title: str,
    target_labels: Sequence[np.ndarray] | None = None,
) -> Path:
    """Figs. 5 and 7: each row is [exemplar at t = 0, outputs at each t of `ts`, exemplar at t = 1]
    (`manipulation.interpolate`: t = 1 is fully the `first` exemplar). `ts=None` is Fig. 7's spatial
    interpolation: rows [left exemplar, output, right exemplar]. `target_labels` adds a first column."""
    middle = ["left → right"] if ts is None else [f"t = {t:g}" for t in ts]
    ends = ("left exemplar", "right exemplar") if ts is None else ("exemplar (t = 0)", "exemplar (t = 1)")
    columns = [ends[0], *middle, ends[1]]
    assert all(len(row) == len(columns) for row in rows), f"every row needs {len(columns)} images: {columns}"
    assert target_labels is None or len(target_labels) == len(rows), "one target label map per row"
    grid = [dict(zip(columns, row, strict=True)) for row in rows]
    if target_labels is not None:
        grid = [{"target labels": labels} | row for labels, row in zip(target_labels, grid, strict=True)]
    return qualitative_grid(grid, path, title=title)


def extrapolation_figure(
    exemplar_patch: np.ndarray,
    label_map: np.ndarray,
    output: np.ndarray,
    path: Path | str,
    *,
    title: str = "example-guided extrapolation",
) -> Path:
    """Fig. 8: the global label map, the exemplar patch at its true scale at the centre of an empty
    canvas of the output's size, and the extrapolated output with the patch's extent outlined."""
    height, width = label_map.shape
    patch_height, patch_width = exemplar_patch.shape[:2]
    assert output.shape[:2] == (height, width), f"output {output.shape} is not the label map's size {label_map.shape}"
    assert patch_height <= height and patch_width <= width, "the exemplar patch is larger than the label map"
    top, left = (height - patch_height) // 2, (width - patch_width) // 2
    canvas = np.full((height, width, 3), 235, dtype=np.uint8)  # [H, W, 3], light grey: the output's extent
    canvas[top : top + patch_height, left : left + patch_width] = _rgb(exemplar_patch)
    figure = Figure(figsize=(PANEL * 3 * 1.3, PANEL * 1.3 + 0.6), layout="constrained")
    axes = figure.subplots(1, 3, squeeze=False)[0]
    _show(axes[0], label_map, title=f"label map c₁ ({height}×{width})")
    _show(axes[1], canvas, title=f"exemplar patch ({patch_height}×{patch_width})")
    _show(axes[2], output, title="extrapolated output")
    for ax in axes[1:]:
        box = Rectangle((left - 0.5, top - 0.5), patch_width, patch_height, fill=False, ec="red", lw=1.2, ls="--")
        ax.add_patch(box)
    figure.suptitle(title)
    return _save(figure, path)


# ---------------------------------------------------------------------------------------------
# appendix B: the transfer matrix and its clustering


def transfer_matrix_figure(
    ratios: np.ndarray,
    class_names: Sequence[str],
    path: Path | str,
    *,
    frequency: np.ndarray | None = None,
    top: int = 20,
    title: str = "transfer matrix of the finest MSCA",
) -> Path:
    """Fig. 10: `ratios` [C exemplar, C target] (columns sum to 1) restricted to the `top` classes by
    `frequency` [C] (labeled pixels; without it, the classes that transfer or receive the most), in
    the same order on both axes: exemplar classes down, target classes across, blue 0 to red 1."""
    assert ratios.ndim == 2 and ratios.shape[0] == ratios.shape[1] == len(class_names), (
        f"expects ratios [C, C] and C names, got {ratios.shape} and {len(class_names)}"
    )
    score = ratios.sum(axis=0) + ratios.sum(axis=1) if frequency is None else np.asarray(frequency, dtype=float)
    classes = _top(score, top)
    assert len(classes) >= 1, "no class occurs"
    names = [class_names[c] for c in classes]
    side = 2.2 + 0.32 * len(classes)
    figure = Figure(figsize=(side + 1.0, side), layout="constrained")
    ax = figure.subplots()
    image = ax.imshow(ratios[np.ix_(classes, classes)], cmap=RATIO_MAP, vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=9)
    ax.set_yticks(range(len(names)), names, fontsize=9)
    ax.set_xlabel("target semantics")
    ax.set_ylabel("exemplar semantics")
    figure.colorbar(image, ax=ax, shrink=0.8, label="ratio of the target class's transferred features")
    ax.set_title(title)
    return _save(figure, path)


def dendrogram_figure(
    features: np.ndarray,
    class_names: Sequence[str],
    path: Path | str,
    *,
    frequency: np.ndarray | None = None,
    top: int = 25,
    title: str = "hierarchical clustering of the transfer matrix's rows",
) -> Path:
    """Fig. 12: average-linkage (Euclidean) clustering of the `top` classes by `frequency` [C] (without
    it, the rows of largest sum), each described by its row of `attention.dendrogram_features` [C, D]."""
    from scipy.cluster.hierarchy import dendrogram, linkage  # here alone: the report stage draws no dendrogram

    assert features.ndim == 2 and features.shape[0] == len(class_names), (
        f"expects features [C, D] and C names, got {features.shape} and {len(class_names)}"
    )
    score = features.sum(axis=1) if frequency is None else np.asarray(frequency, dtype=float)
    classes = _top(score, top)
    assert len(classes) >= 2, "clustering needs at least two classes"
    tree = linkage(features[classes], method="average", metric="euclidean")
    figure = Figure(figsize=(7.5, 1.2 + 0.3 * len(classes)), layout="constrained")
    ax = figure.subplots()
    dendrogram(tree, labels=[class_names[c] for c in classes], orientation="left", ax=ax, leaf_font_size=10)
    ax.set_xlabel("distance between rows (average linkage)")
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    ax.set_title(title)
    return _save(figure, path)


# ---------------------------------------------------------------------------------------------
# training


def loss_curves(
    curves: Mapping[str, pd.DataFrame], path: Path | str, *, window: int | None = None, title: str = "training losses"
) -> Path:
    """One panel per loss column of the train stage's CSVs (`step` and the losses of `training/gan.py`;
    G's terms are empty on steps that do not update G), one line per variant: the raw values faint, a
    trailing moving average of `window` steps (default: a 20th of the run) on top. Columns that are
    empty or zero for every variant (e.g. g_kl outside spade_vae) get no panel."""
    assert curves, "expects at least one variant's curve"
    assert all("step" in frame.columns for frame in curves.values()), "every curve needs a `step` column"
    columns = {c for frame in curves.values() for c in frame.columns if c != "step"}
    informative = [
        c for c in columns if any(c in f.columns and f[c].fillna(0).abs().gt(0).any() for f in curves.values())
    ]
    losses = [c for c in LOSS_ORDER if c in informative] + sorted(set(informative) - set(LOSS_ORDER))
    assert losses, "no loss column holds a value"
    ncols = min(4, len(losses))
    nrows = math.ceil(len(losses) / ncols)
    figure = Figure(figsize=(3.6 * ncols, 2.8 * nrows + 0.5), layout="constrained")
    axes = figure.subplots(nrows, ncols, squeeze=False).ravel()
    colors = {variant: f"C{i % 10}" for i, variant in enumerate(curves)}
    for ax, loss in zip(axes, losses, strict=False):
        for variant, frame in curves.items():
            if loss not in frame.columns:
                continue
            series = frame[["step", loss]].dropna()
            if series.empty:
                continue
            span = window or max(1, len(series) // 20)
            smooth = series[loss].rolling(span, min_periods=1).mean()
            ax.plot(series["step"], series[loss], color=colors[variant], alpha=0.2, lw=0.8)
            ax.plot(series["step"], smooth, color=colors[variant], lw=1.6, label=variant)
        ax.set_title(loss)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for ax in axes[len(losses) :]:
        ax.set_axis_off()
    legend = {label: handle for ax in axes for handle, label in zip(*ax.get_legend_handles_labels(), strict=True)}
    figure.legend(legend.values(), legend.keys(), loc="outside right upper", title="variant", frameon=False)
    figure.suptitle(title)
    return _save(figure, path)
