"""Keras's accuracy metrics: each the weighted mean of a 0/1 value per prediction.

The functions give those values for one batch: one per element for ``accuracy`` and
``binary_accuracy``, one per position (a sample, or a pixel of an image output) for the
categorical ones, whose last axis holds the classes. Ties for the largest output go to the
first.
"""
import numpy as np

from ..arguments import finite_float
from .base import MeanMetricWrapper


def _check_shapes(y_true, y_pred, expected, fn):
    if y_true.shape != tuple(expected):
        raise ValueError(f"Expected targets of shape {tuple(expected)} for {fn}, received shape "
                         f"{y_true.shape}")


def accuracy(y_true, y_pred):
    """1 where a prediction equals its target exactly."""
    _check_shapes(y_true, y_pred, y_pred.shape, "accuracy")
    return (y_true == y_pred).astype(np.float64)


def binary_accuracy(y_true, y_pred, threshold=0.5):
    """1 where a prediction above ``threshold`` has a target of 1, or one at or below it a
    target of 0 (a target that is neither never matches)."""
    _check_shapes(y_true, y_pred, y_pred.shape, "binary_accuracy")
    return (y_true == (y_pred > threshold)).astype(np.float64)


def categorical_accuracy(y_true, y_pred):
    """1 where the largest output sits where the one-hot target has its largest value."""
    _check_shapes(y_true, y_pred, y_pred.shape, "categorical_accuracy")
    return (y_true.argmax(axis=-1) == y_pred.argmax(axis=-1)).astype(np.float64)


def sparse_categorical_accuracy(y_true, y_pred):
    """1 where the largest output sits at the integer label; labels of shape y_pred.shape[:-1],
    or with a last axis of 1."""
    y_true = _labels(y_true, y_pred, "sparse_categorical_accuracy")
    return (y_pred.argmax(axis=-1) == y_true).astype(np.float64)


def _labels(y_true, y_pred, fn):
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = y_true[..., 0]
    _check_shapes(y_true, y_pred, y_pred.shape[:-1], fn)
    return y_true


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
