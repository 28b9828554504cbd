"""How well a label parser reproduces the ground truth: mean IoU and pixel accuracy.

Conventions (the usual semantic-segmentation ones, e.g. the COCO-stuff and DeepLab evaluations):
- one confusion matrix over the contiguous classes is accumulated over the whole test set, rows
  ground truth, columns prediction; pixels whose ground truth is unlabeled are ignored;
- IoU of a class = TP / (TP + FP + FN); mIoU averages it over the classes that occur in the ground
  truth or in the prediction of the test set (a class absent from both has no IoU and is skipped);
- pixel accuracy = correctly labelled pixels / labelled pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from tqdm import tqdm

from egsynth.data import cocostuff
from egsynth.data.labels import UNLABELED_INDEX, label_indices
from egsynth.data.source import DatasetError
from egsynth.parsing.data import read_label_map

PredictFn = Callable[[pd.DataFrame], Sequence[np.ndarray]]
"""Parses rows of a scenes table into stuffthingmaps label maps at each image's original size."""


def confusion_matrix(pred: np.ndarray, target: np.ndarray, num_classes: int, ignore_index: int = UNLABELED_INDEX):
    """[num_classes, num_classes] int64 counts, rows target class, columns predicted class.

    `pred` and `target` hold contiguous class indices of the same shape; pixels where `target` is
    `ignore_index` are skipped. A labelled pixel must have a prediction in 0..num_classes-1.
    """
    if pred.shape != target.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from target shape {target.shape}")
    keep = target != ignore_index
    pred, target = pred[keep].astype(np.int64), target[keep].astype(np.int64)
    if pred.size and (pred.min() < 0 or pred.max() >= num_classes):
        raise ValueError(f"predictions outside 0..{num_classes - 1} on labelled pixels")
    if target.size and (target.min() < 0 or target.max() >= num_classes):
        raise ValueError(f"targets outside 0..{num_classes - 1} and {ignore_index}")
    counts = np.bincount(target * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)  # [target, pred]


def class_iou(cm: np.ndarray) -> np.ndarray:
    """[C] IoU per class, TP / (TP + FP + FN); NaN for a class absent from target and prediction."""
    tp = np.diag(cm).astype(np.float64)
    union = cm.sum(axis=0) + cm.sum(axis=1) - tp  # TP + FP + FN
    iou = np.full(len(cm), np.nan)
    present = union > 0
    iou[present] = tp[present] / union[present]
    return iou


def miou_from_confusion(cm: np.ndarray) -> float:
    """Mean IoU over the classes present in target or prediction (NaN if none is)."""
    iou = class_iou(cm)
    return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")


def pixel_accuracy(cm: np.ndarray) -> float:
    """Correct labelled pixels / labelled pixels (NaN if none is labelled)."""
    total = cm.sum()
    return float(np.trace(cm) / total) if total else float("nan")


def evaluate_parser(predict_fn: PredictFn, scenes_test: pd.DataFrame, *, batch_size: int = 32) -> dict:
    """Parse every test scene with `predict_fn` and compare with its ground-truth label map.

    Returns {"miou", "pixel_accuracy", "classes_evaluated" (classes with an IoU), "images"}.
    """
    if scenes_test.empty:
        raise ValueError("no test scenes to evaluate the parser on")
    num_classes = cocostuff.NUM_CLASSES
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    with tqdm(total=len(scenes_test), desc="evaluate parser", unit="image") as progress:
        for start in range(0, len(scenes_test), batch_size):
            rows = scenes_test.iloc[start : start + batch_size]
            predictions = predict_fn(rows)
            for label_path, predicted in zip(rows["label_path"], predictions, strict=True):
                truth = read_label_map(label_path)
                if predicted.shape != truth.shape:
                    raise DatasetError(
                        f"{label_path}: parsed label map is {predicted.shape}, ground truth {truth.shape}"
                    )
                cm += confusion_matrix(label_indices(predicted), label_indices(truth), num_classes)
            progress.update(len(rows))
    if cm.sum() == 0:
        raise ValueError("the test scenes have no labelled pixel to evaluate the parser on")
    return {
        "miou": miou_from_confusion(cm),
        "pixel_accuracy": pixel_accuracy(cm),
        "classes_evaluated": int(np.isfinite(class_iou(cm)).sum()),
        "images": len(scenes_test),
    }
