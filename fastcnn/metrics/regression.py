"""Keras's regression metrics: mean squared, mean absolute and root mean squared error."""
import numpy as np

from .base import Mean, MeanMetricWrapper, real_array, same_rank


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


class MeanSquaredError(MeanMetricWrapper):
    def __init__(self, name="mean_squared_error", dtype=None):
        super().__init__(mean_squared_error, name=name, dtype=dtype)


class MeanAbsoluteError(MeanMetricWrapper):
    def __init__(self, name="mean_absolute_error", dtype=None):
        super().__init__(mean_absolute_error, name=name, dtype=dtype)


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
