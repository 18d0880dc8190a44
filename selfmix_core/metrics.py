"""Metrics: classification quality, detection quality, confusion counts.

Detection treats "the given label differs from the true label" as the positive class
and `1 - clean_prob` as the score (clean_prob: lower = more likely mislabeled).
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import f1_score, roc_auc_score

from .reports import DetectionMetrics


def _check_same_length(*arrays: np.ndarray) -> None:
    n = {len(a) for a in arrays}
    if len(n) != 1:
        raise ValueError(f"arrays must have the same length, got lengths {sorted(n)}")


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of y_pred == y_true; both (N,) ints, N >= 1."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    _check_same_length(y_true, y_pred)
    if y_true.size == 0:
        raise ValueError("accuracy of an empty set is undefined")
    return float((y_true == y_pred).mean())


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> float:
    """Unweighted mean of per-class F1 over the classes present in y_true or y_pred."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    _check_same_length(y_true, y_pred)
    present = np.union1d(np.unique(y_true), np.unique(y_pred))
    return float(f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0))


def confusion_counts(rows: np.ndarray, cols: np.ndarray, num_classes: int) -> np.ndarray:
    """(K, K) int64 counts[r, c] of pairs (rows[i], cols[i])."""
    rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
    _check_same_length(rows, cols)
    return np.bincount(rows * num_classes + cols, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def row_normalise(counts: np.ndarray) -> np.ndarray:
    """Counts -> row-stochastic matrix; an all-zero row stays zero."""
    counts = np.asarray(counts, dtype=np.float64)
    sums = counts.sum(1, keepdims=True)
    return np.divide(counts, sums, out=np.zeros_like(counts), where=sums > 0)


def detection_metrics(
    clean_prob: np.ndarray, given: np.ndarray, true: np.ndarray, tau: float, mask: np.ndarray | None = None
) -> DetectionMetrics:
    """Precision/recall/F1 of {clean_prob < tau} and AUROC of 1 - clean_prob against the flips.

    All arrays (N,); mask (N,) bool restricts to samples still in training.
    AUROC is None when all or none of the samples are flipped.
    """
    clean_prob, given, true = np.asarray(clean_prob, float), np.asarray(given), np.asarray(true)
    _check_same_length(clean_prob, given, true)
    if mask is not None:
        clean_prob, given, true = clean_prob[mask], given[mask], true[mask]
    noisy = given != true
    flagged = clean_prob < tau
    tp = int((noisy & flagged).sum())
    n_flag, n_noisy = int(flagged.sum()), int(noisy.sum())
    precision = tp / n_flag if n_flag else 0.0
    recall = tp / n_noisy if n_noisy else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    auroc = float(roc_auc_score(noisy, 1.0 - clean_prob)) if 0 < n_noisy < noisy.size else None
    return DetectionMetrics(precision, recall, f1, auroc, n_flag, n_noisy)
