"""Exemplar retrieval by label histogram intersection (Sec. 4, "retrieving task", and footnote 2).

The retrieving task retrieves "an image pool that has the greatest label histogram intersections
with the GT image", then selects the best-matched image "out of candidates using SIFT Flow". The
user study instead uses "the top 20 percentile images as exemplars" (footnote 2: "this differs from
the typical retrieve task that uses the top-1 image"), so that exemplars stay semantically
different from the target. Here:

- `label_histogram`: the fraction of the labeled pixels in each class, so maps of any size compare;
- `histogram_intersection`: sum_c min(h_target_c, h_pool_c), 1 for equal histograms, 0 for disjoint;
- `top_n_pool`: the retrieving task's pool, the N entries of greatest intersection, every one to be
  ranked by `correspondence.rank_candidates`;
- `percentile_pool` and `choose_candidates`: the user study's setting, the entries in the top
  `percentile` percent of intersection, and a seeded draw from them to be ranked.
"""

from __future__ import annotations

import math

import numpy as np

from egsynth.data.cocostuff import NUM_CLASSES
from egsynth.data.labels import UNLABELED_INDEX


def label_histogram(labels: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """Fraction of the labeled pixels in each class: float64 [C], all zeros if nothing is labeled.

    Unlabeled pixels are left out of the denominator, so a partly unlabeled map of one class still
    intersects fully with a fully labeled map of that class.
    """
    values = np.asarray(labels).ravel()  # [H*W]
    labeled = values[values != UNLABELED_INDEX]
    if labeled.size and (int(labeled.min()) < 0 or int(labeled.max()) >= num_classes):
        raise ValueError(f"label maps hold class indices in [0, {num_classes}) or {UNLABELED_INDEX}")
    counts = np.bincount(labeled, minlength=num_classes).astype(np.float64)  # [C]
    return counts / labeled.size if labeled.size else counts


def histogram_intersection(target: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """sum_c min(target_c, pool_nc) of a target histogram [C] with each pool histogram [N, C]: [N]."""
    target, pool = np.asarray(target, dtype=np.float64), np.asarray(pool, dtype=np.float64)
    if target.ndim != 1 or pool.ndim != 2 or pool.shape[1] != target.shape[0]:
        raise ValueError(f"expects a target histogram [C] and pool histograms [N, C], got {target.shape}, {pool.shape}")
    return np.minimum(target[None, :], pool).sum(axis=1)  # [N]


def _by_intersection(target_hist: np.ndarray, pool_hists: np.ndarray, exclude: np.ndarray | None) -> np.ndarray:
    """Indices of the pool entries not excluded, intersection descending, ties by index ascending."""
    scores = histogram_intersection(target_hist, pool_hists)  # [N]
    eligible = np.ones(len(scores), dtype=bool) if exclude is None else ~np.asarray(exclude, dtype=bool)
    if eligible.shape != scores.shape:
        raise ValueError(f"exclude must be a bool mask of the {len(scores)} pool entries, got shape {eligible.shape}")
    indices = np.flatnonzero(eligible)  # [M]
    if indices.size == 0:
        raise ValueError("no pool entry is eligible: the pool is empty or every entry is excluded")
    return indices[np.lexsort((indices, -scores[indices]))]  # [M]


def top_n_pool(
    target_hist: np.ndarray,
    pool_hists: np.ndarray,
    *,
    size: int,  # N: entries returned (all eligible ones if fewer)
    exclude: np.ndarray | None = None,  # bool [N]: entries never returned (the target itself); None: none
) -> np.ndarray:
    """Indices into the pool of its `size` entries of greatest histogram intersection, best first, ties by
    index ascending so the pool is deterministic (the retrieving task's pool)."""
    if size < 1:
        raise ValueError(f"the pool size must be at least 1, got {size}")
    return _by_intersection(target_hist, pool_hists, exclude)[:size]


def percentile_pool(
    target_hist: np.ndarray,
    pool_hists: np.ndarray,
    *,
    percentile: float,  # keep the top `percentile` percent of the eligible entries, in (0, 100]
    exclude: np.ndarray | None = None,  # bool [N]: entries never returned (the target itself); None: none
) -> np.ndarray:
    """Indices into the pool of its top `percentile` percent by histogram intersection (at least one),
    best first, ties by index ascending (the user study's pool, footnote 2).

    The pool holds ceil(percentile / 100 * eligible) entries, counted over the entries not excluded.
    """
    if not 0 < percentile <= 100:
        raise ValueError(f"percentile must lie in (0, 100], got {percentile}")
    ranked = _by_intersection(target_hist, pool_hists, exclude)  # [M]
    # The small slack keeps e.g. 20 % of 10 at 2 despite float rounding.
    return ranked[: max(1, math.ceil(ranked.size * percentile / 100 - 1e-9))]


def choose_candidates(pool_indices: np.ndarray, *, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` pool entries (all if fewer) drawn without replacement by `rng`, kept in pool order.

    Drawing from the whole top-percentile pool instead of taking its head keeps the exemplars
    semantically different from the target (footnote 2, the user study's setting).
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    pool_indices = np.asarray(pool_indices)
    if pool_indices.ndim != 1:
        raise ValueError(f"pool_indices must be 1-D, got shape {pool_indices.shape}")
    picked = rng.choice(pool_indices.size, size=min(count, pool_indices.size), replace=False)
    return pool_indices[np.sort(picked)]
