"""Keras's regression metrics: mean squared, mean absolute, root mean squared, mean absolute
percentage and mean squared logarithmic error, cosine similarity, and the R2 score."""
import numbers
import warnings

import numpy as np

from ..arguments import axis_index, one_of
from ..config import EPSILON
from .base import Mean, MeanMetricWrapper, Metric, real_array, real_pair, same_rank


def _pair(y_true, y_pred, fn):
    """y_true and y_pred as float64 arrays of one shape."""
    y_true, y_pred = real_pair(y_true, y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"Expected targets of shape {y_pred.shape} for {fn}, received shape "
                         f"{y_true.shape}")
    return y_true.astype(np.float64, copy=False), y_pred.astype(np.float64, copy=False)


def mean_squared_error(y_true, y_pred):
    """The mean of the squared differences over the last axis."""
    y_true, y_pred = _pair(y_true, y_pred, "mean_squared_error")
    return np.square(y_pred - y_true).mean(axis=-1)


def mean_absolute_error(y_true, y_pred):
    """The mean of the absolute differences over the last axis."""
    y_true, y_pred = _pair(y_true, y_pred, "mean_absolute_error")
    return np.abs(y_pred - y_true).mean(axis=-1)


def mean_absolute_percentage_error(y_true, y_pred):
    """100 times the mean over the last axis of |y_true - y_pred| / |y_true|, |y_true| raised
    to at least 1e-7."""
    y_true, y_pred = _pair(y_true, y_pred, "mean_absolute_percentage_error")
    return 100 * (np.abs(y_pred - y_true) / np.maximum(np.abs(y_true), EPSILON)).mean(axis=-1)


def mean_squared_logarithmic_error(y_true, y_pred):
    """The mean over the last axis of (log(1 + y_pred) - log(1 + y_true))^2, each value raised
    to at least 1e-7 first."""
    y_true, y_pred = _pair(y_true, y_pred, "mean_squared_logarithmic_error")
    logs = [np.log1p(np.maximum(a, EPSILON)) for a in (y_pred, y_true)]
    return np.square(logs[0] - logs[1]).mean(axis=-1)


def cosine_similarity(y_true, y_pred, axis=-1):
    """The cosine of the angle between y_true and y_pred along ``axis``; a norm below 1e-6
    counts as 1e-6."""
    y_true, y_pred = _pair(y_true, y_pred, "cosine_similarity")
    axis = axis_index(axis)
    unit = [a / np.sqrt(np.maximum(np.square(a).sum(axis=axis, keepdims=True), 1e-12))
            for a in (y_true, y_pred)]
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
        super().__init__(cosine_similarity, name=name, dtype=dtype, axis=axis_index(axis))


class RootMeanSquaredError(Mean):
    """The square root of the weighted mean of the squared differences (each element weighs
    its sample's weight)."""

    def __init__(self, name="root_mean_squared_error", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = _pair(*same_rank(*real_pair(y_true, y_pred)), "root_mean_squared_error")
        squares = np.square(y_pred - y_true)
        super().update_state(squares, sample_weight)

    def result(self):
        return float(np.sqrt(super().result()))


class R2Score(Metric):
    """The coefficient of determination of each output (column) of (samples, outputs):
    1 - sum(w (y - y_pred)^2) / sum(w (y - weighted mean of y)^2), 0 where that total is 0.

    ``class_aggregation``: "uniform_average" (the mean over the outputs), "variance_weighted_
    average" (weighted by each output's total sum of squares) or None (one score per output).
    ``num_regressors`` > 0 gives the adjusted score 1 - (1 - R2) (n - 1) / (n - p - 1), n
    counting every target value as Keras does; with p >= n - 1 the plain score is returned,
    with a warning. Sample weights are per sample, or of the targets' shape.
    """

    AGGREGATIONS = (None, "uniform_average", "variance_weighted_average")

    def __init__(self, class_aggregation="uniform_average", num_regressors=0, name="r2_score",
                 dtype=None):
        one_of(class_aggregation, self.AGGREGATIONS, "class_aggregation")
        if isinstance(num_regressors, bool) or not isinstance(num_regressors, numbers.Integral) \
                or num_regressors < 0:
            raise ValueError(f"Expected num_regressors to be a non-negative int, received "
                             f"num_regressors={num_regressors!r:.200}")
        self.class_aggregation, self.num_regressors = class_aggregation, int(num_regressors)
        super().__init__(name=name, dtype=dtype)
        self.reset_state()

    def reset_state(self):
        self.sum = self.squared_sum = self.total_mse = self.count = None
        self.num_samples = 0

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = (a.astype(np.float64, copy=False) for a in real_pair(y_true, y_pred))
        if y_pred.ndim != 2 or y_true.shape != y_pred.shape:
            raise ValueError(f"Expected y_true and y_pred of one shape (samples, outputs) for "
                             f"{self.name}, received {y_true.shape} and {y_pred.shape}")
        weight = np.ones(1) if sample_weight is None else \
            real_array(sample_weight, "sample_weight").astype(np.float64, copy=False)
        if weight.ndim == 1 and sample_weight is not None:
            weight = weight[:, None]
        try:
            weight = np.broadcast_to(weight, y_true.shape)
        except ValueError:
            raise ValueError(f"Expected sample_weight of shape ({len(y_true)},) or "
                             f"{y_true.shape}, received shape {np.shape(sample_weight)}") from None
        if self.sum is not None and self.sum.shape != y_true.shape[1:]:
            raise ValueError(f"Expected {self.sum.shape[0]} outputs, as before, received "
                             f"y_pred of shape {y_pred.shape}")
        sums = ((weight * y_true).sum(axis=0), (weight * y_true * y_true).sum(axis=0),
                (weight * np.square(y_true - y_pred)).sum(axis=0), weight.sum(axis=0))
        if self.sum is None:
            self.sum, self.squared_sum, self.total_mse, self.count = sums
        else:
            self.sum, self.squared_sum, self.total_mse, self.count = (
                a + b for a, b in zip((self.sum, self.squared_sum, self.total_mse, self.count),
                                      sums))
        self.num_samples += y_true.size

    def result(self):
        if self.sum is None:
            return 0.0
        with np.errstate(divide="ignore", invalid="ignore"):
            total = self.squared_sum - self.sum * (self.sum / self.count)
            raw = 1 - self.total_mse / total
        raw = np.where(np.isinf(raw), 0.0, raw)
        if self.class_aggregation == "uniform_average":
            score = raw.mean()
        elif self.class_aggregation == "variance_weighted_average":
            score = (total * raw).sum() / total.sum()
        else:
            score = raw
        n, p = self.num_samples, self.num_regressors
        if p and p >= n - 1:
            warnings.warn(f"{self.name}: num_regressors={p} leaves no degrees of freedom with "
                          f"{n} values; returning the unadjusted R2 score", stacklevel=2)
        elif p:
            score = 1 - (1 - score) * (n - 1) / (n - p - 1)
        return float(score) if np.ndim(score) == 0 else np.asarray(score)

    def get_config(self):
        return {**super().get_config(), "class_aggregation": self.class_aggregation,
                "num_regressors": self.num_regressors}
