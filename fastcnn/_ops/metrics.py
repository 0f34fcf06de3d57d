"""Metrics' counts: checked calls of ``_ext.metrics``, and the sums of their per-chunk counts.

The rows are cut into a number of chunks that depends only on the shapes (never on the thread
count), and the chunks' counts are summed in order, so the totals are the same for any
``n_threads``.
"""
import math

import numpy as np

from .._ext import metrics as _metrics
from .checks import as_kernel_array, positive_int
from .threads import effective_n_threads

CHUNK_ROWS = 4096  # rows per chunk of counts, for inputs of at most MAX_CHUNKS chunks
MAX_CHUNKS = 64
PARTIAL_VALUES = 1 << 22  # at most this many float64 counts in all the chunks together


def _chunks(n_rows, counts_per_chunk):
    return max(1, min(-(-n_rows // CHUNK_ROWS), MAX_CHUNKS,
                      PARTIAL_VALUES // max(counts_per_chunk, 1)))


def class_labels(labels, n_classes, name, shape):
    """``labels`` as int64 of ``shape``, each in [0, n_classes)."""
    labels = np.asarray(labels)
    if labels.shape != tuple(shape):
        raise ValueError(f"Expected {name} of shape {tuple(shape)}, received {labels.shape}")
    if labels.dtype.kind == "f":
        if not np.array_equal(labels, np.round(labels)):  # NaN and fractions alike
            raise ValueError(f"Expected integer class labels in {name}, received fractional "
                             "or NaN values")
    elif labels.dtype.kind not in "iub":
        raise TypeError(f"Expected integer class labels in {name}, received dtype "
                        f"{labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"Expected {name} in [0, {n_classes}), received values from "
                         f"{labels.min()} to {labels.max()}")
    return np.ascontiguousarray(labels, dtype=np.int64)


def top_k_hits(y_pred, targets, k, n_threads=None):
    """1.0 for each row of y_pred (R, K) whose target class is among its k largest scores
    (scores tied with the k-th largest count as among them), else 0.0; (R,) of y_pred's
    dtype."""
    n_threads = effective_n_threads(n_threads)
    y_pred = as_kernel_array(y_pred, "y_pred", ndim=2)
    if y_pred.shape[1] == 0:
        raise ValueError(f"Expected y_pred with at least one class, received shape "
                         f"{y_pred.shape}")
    targets = class_labels(targets, y_pred.shape[1], "targets", y_pred.shape[:1])
    hits = np.empty(len(y_pred), y_pred.dtype)
    # every class is among the k largest for any k from the number of classes up
    k = min(positive_int(k, "k"), y_pred.shape[1])
    _metrics.top_k_hits(y_pred, targets, k, hits, n_threads)
    return hits


def threshold_confusion(y_pred, y_true, weight, thresholds, n_threads=None):
    """The weighted confusion counts of each label (column) of y_pred (N, L) at each threshold,
    a prediction counting as positive when it exceeds the threshold: (tp, fp, tn, fn), each
    float64 (L, T) in the order of ``thresholds``. A target y counts y as positive and 1 - y as
    negative; y_true and weight have y_pred's shape.

    Each prediction is placed once among the sorted thresholds, in O(1) comparisons for evenly
    spaced ones, and the counts at every threshold are then running sums over those places.
    """
    n_threads = effective_n_threads(n_threads)
    y_pred = as_kernel_array(y_pred, "y_pred", ndim=2)
    y_true = as_kernel_array(y_true, "y_true", dtype=y_pred.dtype, shape=y_pred.shape)
    weight = as_kernel_array(weight, "weight", dtype=y_pred.dtype, shape=y_pred.shape)
    thresholds = np.asarray(thresholds, np.float64).reshape(-1)
    if thresholds.size == 0 or np.isnan(thresholds).any():
        raise ValueError(f"Expected at least one threshold and no NaN, received {thresholds}")
    order = np.argsort(thresholds, kind="stable")
    ascending = np.ascontiguousarray(thresholds[order])
    n_t, n_labels = len(ascending), y_pred.shape[1]
    ends_finite = math.isfinite(ascending[0]) and math.isfinite(ascending[-1])
    span = ascending[-1] - ascending[0] if ends_finite else 0.0
    scale = (n_t - 1) / span if span > 0 else 0.0
    chunks = _chunks(len(y_pred), 2 * n_labels * (n_t + 1))
    positive = np.empty((chunks, n_labels, n_t + 1))
    negative = np.empty_like(positive)
    origin = float(ascending[0]) if math.isfinite(ascending[0]) else 0.0
    _metrics.threshold_histograms(y_pred, y_true, weight, ascending, origin, scale, positive,
                                  negative, n_threads)
    positive, negative = positive.sum(axis=0), negative.sum(axis=0)
    # At threshold j, the predictions above it are those in buckets j + 1 and up.
    tp = np.cumsum(positive[:, ::-1], axis=1)[:, ::-1][:, 1:]
    fp = np.cumsum(negative[:, ::-1], axis=1)[:, ::-1][:, 1:]
    fn = np.cumsum(positive, axis=1)[:, :-1]
    tn = np.cumsum(negative, axis=1)[:, :-1]
    counts = []
    for c in (tp, fp, tn, fn):
        unsorted = np.empty_like(c)
        unsorted[:, order] = c
        counts.append(unsorted)
    return tuple(counts)


def confusion_matrix(labels, predicted, weight, n_classes, n_threads=None):
    """The weighted confusion matrix (n_classes, n_classes), float64: entry (i, j) sums the
    weights of the positions whose label is i and prediction j. labels and predicted are (N,)
    class indices, weight (N,)."""
    n_threads = effective_n_threads(n_threads)
    n_classes = positive_int(n_classes, "num_classes")
    shape = np.shape(labels)
    if len(shape) != 1:
        raise ValueError(f"Expected labels of rank 1, received shape {shape}")
    labels = class_labels(labels, n_classes, "labels", shape)
    predicted = class_labels(predicted, n_classes, "predictions", shape)
    weight = as_kernel_array(weight, "weight", shape=shape)
    partial = np.empty((_chunks(len(labels), n_classes * n_classes), n_classes, n_classes))
    _metrics.confusion_matrix(labels, predicted, weight, partial, n_threads)
    return partial.sum(axis=0)
