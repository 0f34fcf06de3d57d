"""Keras's regression metrics: mean squared, mean absolute, root mean squared, mean absolute
percentage and mean squared logarithmic error, and cosine similarity."""
import numpy as np

from .base import Mean, MeanMetricWrapper, real_array, same_rank

EPSILON = 1e-7  # Keras's backend epsilon


def _difference(y_true, y_pred, fn):
    if y_true.shape != y_pred.shape:
        raise ValueError(f"Expected targets of shape {y_pred.shape} for {fn}, received shape "
                         f"{y_true.shape}")
    return y_pred.astype(np.float64) - y_true


def mean_squared_error(y_true, y_pred):
    """The mean of the squared differences over the last axis."""
    return np.square(_difference(y_true, y_pred, "mean_squared_error")).mean(axis=-1)


def mean_absolute_error(y_true, y_pred):
    """The mean of the absolute differences over the last axis."""
    return np.abs(_difference(y_true, y_pred, "mean_absolute_error")).mean(axis=-1)


def mean_absolute_percentage_error(y_true, y_pred):
    """100 times the mean over the last axis of |y_true - y_pred| / |y_true|, |y_true| raised
    to at least 1e-7."""
    d = _difference(y_true, y_pred, "mean_absolute_percentage_error")
    return 100 * (np.abs(d) / np.maximum(np.abs(y_true), EPSILON)).mean(axis=-1)


def mean_squared_logarithmic_error(y_true, y_pred):
    """The mean over the last axis of (log(1 + y_pred) - log(1 + y_true))^2, each value raised
    to at least 1e-7 first."""
    _difference(y_true, y_pred, "mean_squared_logarithmic_error")
    logs = [np.log1p(np.maximum(np.asarray(a, np.float64), EPSILON)) for a in (y_pred, y_true)]
    return np.square(logs[0] - logs[1]).mean(axis=-1)


def cosine_similarity(y_true, y_pred, axis=-1):
    """The cosine of the angle between y_true and y_pred along ``axis``; a norm below 1e-6
    counts as 1e-6."""
    _difference(y_true, y_pred, "cosine_similarity")
    unit = [a / np.sqrt(np.maximum(np.square(a).sum(axis=axis, keepdims=True), 1e-12))
            for a in (np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64))]
    return (unit[0] * unit[1]).sum(axis=axis)


class MeanSquaredError(MeanMetricWrapper):
    def __init__(self, name="mean_squared_error", dtype=None):
        super().__init__(mean_squared_error, name=name, dtype=dtype)


class MeanAbsoluteError(MeanMetricWrapper):
    def __init__(self, name="mean_absolute_error", dtype=None):
        super().__init__(mean_absolute_error, name=name, dtype=dtype)


class MeanAbsolutePercentageError(MeanMetricWrapper):
    def __init__(self, name="mean_absolute_percentage_error", dtype=None):
        super().__init__(mean_absolute_percentage_error, name=name, dtype=dtype)


class MeanSquaredLogarithmicError(MeanMetricWrapper):
    def __init__(self, name="mean_squared_logarithmic_error", dtype=None):
        super().__init__(mean_squared_logarithmic_error, name=name, dtype=dtype)


class CosineSimilarity(MeanMetricWrapper):
    def __init__(self, name="cosine_similarity", dtype=None, axis=-1):
        super().__init__(cosine_similarity, name=name, dtype=dtype, axis=axis)


class RootMeanSquaredError(Mean):
    """The square root of the weighted mean of the squared differences (each element weighs
    its sample's weight)."""

    def __init__(self, name="root_mean_squared_error", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = same_rank(real_array(y_true, "y_true"), real_array(y_pred, "y_pred"))
        squares = np.square(_difference(y_true, y_pred, "root_mean_squared_error"))
        super().update_state(squares, sample_weight)

    def result(self):
        return float(np.sqrt(super().result()))
