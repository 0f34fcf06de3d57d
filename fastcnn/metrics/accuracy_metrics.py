"""Keras's accuracy metrics: each the weighted mean of a 0/1 value per prediction.

The functions give those values for one batch: one per element for ``accuracy`` and
``binary_accuracy``, one per position (a sample, or a pixel of an image output) for the
categorical ones, whose last axis holds the classes. Ties for the largest output go to the
first.
"""
import numpy as np

from .._ops import metrics as metric_ops
from .._ops.checks import positive_int
from ..arguments import finite_float
from .base import MeanMetricWrapper, real_pair, same_rank


def _targets(y_true, y_pred, fn, classes=False, sparse=False):
    """y_true and y_pred as real arrays, the targets of y_pred's shape (ranks matched first, as
    Keras does); with ``classes``, y_pred's last axis holds the classes, which ``sparse``
    targets (integer labels) lack or hold as an axis of 1."""
    y_true, y_pred = real_pair(y_true, y_pred)
    if not sparse:
        y_true, y_pred = same_rank(y_true, y_pred)
    if classes and y_pred.ndim == 0:
        raise ValueError(f"Expected y_pred with a last axis of classes for {fn}, received a "
                         "scalar")
    expected = y_pred.shape[:-1] if sparse else y_pred.shape
    if sparse and y_true.ndim == y_pred.ndim and y_true.shape[-1:] == (1,):
        y_true = y_true[..., 0]
    if y_true.shape != expected:
        raise ValueError(f"Expected targets of shape {expected} for {fn}, received shape "
                         f"{y_true.shape}")
    return y_true, y_pred


def accuracy(y_true, y_pred):
    """1 where a prediction equals its target exactly."""
    y_true, y_pred = _targets(y_true, y_pred, "accuracy")
    return (y_true == y_pred).astype(np.float64)


def binary_accuracy(y_true, y_pred, threshold=0.5):
    """1 where a prediction above ``threshold`` has a target of 1, or one at or below it a
    target of 0 (a target that is neither never matches)."""
    y_true, y_pred = _targets(y_true, y_pred, "binary_accuracy")
    return (y_true == (y_pred > _threshold(threshold))).astype(np.float64)


def categorical_accuracy(y_true, y_pred):
    """1 where the largest output sits where the one-hot target has its largest value."""
    y_true, y_pred = _targets(y_true, y_pred, "categorical_accuracy", classes=True)
    return (y_true.argmax(axis=-1) == y_pred.argmax(axis=-1)).astype(np.float64)


def sparse_categorical_accuracy(y_true, y_pred):
    """1 where the largest output sits at the integer label; labels of shape y_pred.shape[:-1],
    or with a last axis of 1."""
    y_true, y_pred = _targets(y_true, y_pred, "sparse_categorical_accuracy", classes=True,
                              sparse=True)
    return (y_pred.argmax(axis=-1) == y_true).astype(np.float64)


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    """1 where the one-hot target's class is among the k largest outputs (outputs tied with the
    k-th largest count as among them)."""
    y_true, y_pred = _targets(y_true, y_pred, "top_k_categorical_accuracy", classes=True)
    return _top_k(y_true.argmax(axis=-1), y_pred, k)


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5, from_sorted_ids=False):
    """1 where the integer label is among the k largest outputs (ties as in
    top_k_categorical_accuracy); with ``from_sorted_ids``, y_pred holds class ids, best first,
    and the label must be among the first k."""
    y_true, y_pred = _targets(y_true, y_pred, "sparse_top_k_categorical_accuracy",
                              classes=True, sparse=True)
    if from_sorted_ids:
        k = positive_int(k, "k")
        return (y_pred[..., :k] == y_true[..., None]).any(axis=-1).astype(np.float64)
    return _top_k(y_true, y_pred, k)


def _top_k(labels, y_pred, k):
    """The top-k hits of each position, in the positions' shape."""
    if y_pred.ndim < 2:
        raise ValueError(f"Expected y_pred of shape (samples, ..., classes), received shape "
                         f"{y_pred.shape}")
    hits = metric_ops.top_k_hits(y_pred.reshape(-1, y_pred.shape[-1]), labels.reshape(-1), k)
    return hits.reshape(labels.shape)


def _threshold(threshold):
    if finite_float(threshold) is None:
        raise ValueError(f"Expected threshold to be a finite number, received "
                         f"threshold={threshold!r:.200}")
    return float(threshold)


class Accuracy(MeanMetricWrapper):
    """How often predictions equal their targets exactly."""

    def __init__(self, name="accuracy", dtype=None):
        super().__init__(accuracy, name=name, dtype=dtype)


class BinaryAccuracy(MeanMetricWrapper):
    """How often predictions thresholded at ``threshold`` equal binary targets."""

    def __init__(self, name="binary_accuracy", dtype=None, threshold=0.5):
        super().__init__(binary_accuracy, name=name, dtype=dtype, threshold=_threshold(threshold))


class CategoricalAccuracy(MeanMetricWrapper):
    """How often the largest output is the one-hot target's class."""

    def __init__(self, name="categorical_accuracy", dtype=None):
        super().__init__(categorical_accuracy, name=name, dtype=dtype)


class SparseCategoricalAccuracy(MeanMetricWrapper):
    """How often the largest output is at the integer label."""

    def __init__(self, name="sparse_categorical_accuracy", dtype=None):
        super().__init__(sparse_categorical_accuracy, name=name, dtype=dtype)


class TopKCategoricalAccuracy(MeanMetricWrapper):
    """How often the one-hot target's class is among the k largest outputs."""

    def __init__(self, k=5, name="top_k_categorical_accuracy", dtype=None):
        super().__init__(top_k_categorical_accuracy, name=name, dtype=dtype,
                         k=positive_int(k, "k"))


class SparseTopKCategoricalAccuracy(MeanMetricWrapper):
    """How often the integer label is among the k largest outputs."""

    def __init__(self, k=5, name="sparse_top_k_categorical_accuracy", dtype=None,
                 from_sorted_ids=False):
        super().__init__(sparse_top_k_categorical_accuracy, name=name, dtype=dtype,
                         k=positive_int(k, "k"), from_sorted_ids=bool(from_sorted_ids))
