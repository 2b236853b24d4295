"""mIoU and Open-mIoU from a confusion matrix, in plain numpy.

The confusion matrix has one row per ground-truth class and one column per predicted class plus a
last "void" column for predictions outside the class range (they count against recall only).

Open-IoU (after Zhou et al., "Rethinking Evaluation Metrics of Open-Vocabulary Segmentation")
replaces hard hits by class similarity s(p, c) in [0, 1] with s(c, c) = 1: for class c,
TP_c = sum_p C[c, p] s(p, c), FP_c = sum_{g != c} C[g, c] (1 - s(c, g)), and
IoU_c = TP_c / (|gt = c| + FP_c). With s = identity it is exactly the IoU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def confusion_matrix(
    pred: np.ndarray, gt: np.ndarray, num_classes: int, ignore_index: int
) -> np.ndarray:
    """(K, K + 1) int64 counts of (ground truth, prediction) over pixels whose gt is not ignored."""
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from label shape {gt.shape}")
    keep = gt != ignore_index
    gt_ids = gt[keep].astype(np.int64)
    if gt_ids.size and (gt_ids.min() < 0 or gt_ids.max() >= num_classes):
        raise ValueError(f"label ids outside 0..{num_classes - 1} and not ignore {ignore_index}")
    pred_ids = pred[keep].astype(np.int64)
    pred_ids = np.where((pred_ids < 0) | (pred_ids >= num_classes), num_classes, pred_ids)
    flat = np.bincount(
        gt_ids * (num_classes + 1) + pred_ids, minlength=num_classes * (num_classes + 1)
    )
    return flat.reshape(num_classes, num_classes + 1)


@dataclass(frozen=True)
class ClassPixelCounts:
    """The classes of one image that are in its ground truth or its prediction, with their
    ground-truth, predicted and intersecting pixel counts (non-ignored pixels only)."""

    classes: np.ndarray
    gt_pixels: np.ndarray
    pred_pixels: np.ndarray
    intersection: np.ndarray


def class_pixel_counts(cells: np.ndarray, counts: np.ndarray, num_classes: int) -> ClassPixelCounts:
    """Per-class counts from one image's non-zero confusion cells (flat indices into the
    (K, K + 1) matrix and their counts); predictions outside the classes count for no class."""
    gt, pred = np.divmod(np.asarray(cells, dtype=np.int64), num_classes + 1)
    counts = np.asarray(counts, dtype=np.int64)
    in_range = pred < num_classes

    def per_class(ids: np.ndarray, weights: np.ndarray) -> np.ndarray:
        totals = np.zeros(num_classes, dtype=np.int64)
        np.add.at(totals, ids, weights)
        return totals

    gt_pixels = per_class(gt, counts)
    pred_pixels = per_class(pred[in_range], counts[in_range])
    intersection = per_class(gt[gt == pred], counts[gt == pred])
    classes = np.flatnonzero((gt_pixels > 0) | (pred_pixels > 0))
    return ClassPixelCounts(
        classes, gt_pixels[classes], pred_pixels[classes], intersection[classes]
    )


def iou_per_class(confusion: np.ndarray) -> np.ndarray:
    """IoU per class; NaN where a class is in neither the labels nor the predictions."""
    num_classes = confusion.shape[0]
    hits = np.diag(confusion[:, :num_classes]).astype(np.float64)
    union = confusion.sum(1) + confusion[:, :num_classes].sum(0) - hits
    return _divide(hits, union)


def open_iou_per_class(confusion: np.ndarray, similarity: np.ndarray) -> np.ndarray:
    """Open-IoU per class; `similarity[p, c]` is the credit for predicting p where c is true and
    must be 1 on the diagonal."""
    num_classes = confusion.shape[0]
    counts = confusion[:, :num_classes].astype(np.float64)
    soft_hits = (counts * similarity.T).sum(1)
    soft_false_positives = (counts * (1.0 - similarity.T)).sum(0)  # s(c, c) = 1: no self term
    return _divide(soft_hits, confusion.sum(1) + soft_false_positives)


def accuracy_per_class(confusion: np.ndarray) -> np.ndarray:
    num_classes = confusion.shape[0]
    return _divide(np.diag(confusion[:, :num_classes]).astype(np.float64), confusion.sum(1))


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / np.maximum(denominator, 1e-12), np.nan)


def class_similarity(embeddings: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Cosine similarity of L2-normalised class-name embeddings, zero below `threshold`, 1 on the
    diagonal: only near-synonyms earn partial credit."""
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True).clip(min=1e-12)
    similarity = np.clip(unit @ unit.T, 0.0, 1.0)
    similarity[similarity < threshold] = 0.0
    np.fill_diagonal(similarity, 1.0)
    return similarity
