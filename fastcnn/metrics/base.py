"""The metric protocol, Keras 3's: state that ``update_state`` accumulates batch by batch,
``result`` reads and ``reset_state`` clears; ``Mean``, the weighted mean of values that most
metrics reduce to; and ``MeanMetricWrapper``, the mean of a function's values.

States are accumulated in float64 whatever the metric's ``dtype`` (which names the precision
Keras would keep them in); ``result`` returns a Python float, or an array where Keras returns a
vector.
"""
import re

import numpy as np

from ..serialization import Configurable


def snake_case(name):
    """Keras's snake case of a class name: "TopKCategoricalAccuracy" -> "top_k_categorical_accuracy",
    "MeanIoU" -> "mean_io_u"."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


class Metric(Configurable):
    """Keras's Metric. A subclass sets its state in ``reset_state`` (which the constructor
    calls), adds one batch to it in ``update_state`` and reads it in ``result``.

    ``metric(y_true, y_pred)`` updates the state with the batch and returns ``result()``, the
    value over every batch seen since the last reset, as Keras 3 does.
    """

    def __init__(self, name=None, dtype=None):
        if name is not None and not isinstance(name, str):
            raise TypeError(f"Expected name to be a string, received {name!r:.200}")
        self.name = name or snake_case(type(self).__name__)
        self.dtype = _float_dtype(dtype)
        self.reset_state()

    def update_state(self, *args, **kwargs):
        raise NotImplementedError

    def result(self):
        raise NotImplementedError

    def reset_state(self):
        raise NotImplementedError

    def __call__(self, *args, **kwargs):
        self.update_state(*args, **kwargs)
        return self.result()

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}>"


def _float_dtype(dtype):
    """The name of a floating dtype; "float32" (Keras's floatx) for None."""
    if dtype is None:
        return "float32"
    try:
        kind = np.dtype(dtype)
    except TypeError:
        kind = None
    if kind is None or kind.kind != "f":
        raise ValueError(f"Expected dtype to be a floating type such as 'float32', received "
                         f"dtype={dtype!r:.200}")
    return kind.name


def same_rank(a, b):
    """a and b with ranks made equal where they differ by one through a last axis of 1, as
    Keras does: that axis is dropped, except that a rank-1 array is given one instead."""
    if a.ndim == b.ndim + 1 and a.shape[-1] == 1:
        return (a, b[..., None]) if b.ndim == 1 else (a[..., 0], b)
    if b.ndim == a.ndim + 1 and b.shape[-1] == 1:
        return (a[..., None], b) if a.ndim == 1 else (a, b[..., 0])
    return a, b


def real_array(a, name):
    """``a`` as an array of real numbers (bools count as 0 and 1)."""
    a = np.asarray(a)
    if a.dtype.kind not in "fiub":
        raise TypeError(f"Expected {name} to hold real numbers, received dtype {a.dtype}")
    return a


def samplewise(values, sample_weight):
    """(per-sample values, their weights) whose sums give Keras's weighted mean.

    Without weights each sample's value is the mean of its values, and each weighs 1. With
    weights, of the values' shape or of their leading axes (a per-sample weight): the values are
    first averaged over the axes the weights lack, then multiplied by the weights; a sample's
    value and weight are then the means of those products and of its weights, so that
    sum(values) / sum(weights) is the weighted mean over every position.
    """
    values = real_array(values, "values").astype(np.float64)
    if sample_weight is None:
        if values.ndim > 1:
            values = values.reshape(len(values), -1).mean(axis=1)
        return values.reshape(-1), np.ones(values.size)
    weights = real_array(sample_weight, "sample_weight").astype(np.float64)
    values, weights = same_rank(values, weights)
    if values.ndim > weights.ndim:
        values = values.mean(axis=tuple(range(weights.ndim, values.ndim)))
    try:
        weights = np.broadcast_to(weights, values.shape)
    except ValueError:
        raise ValueError(f"Expected sample_weight of a shape that broadcasts to the values' "
                         f"{values.shape}, received shape {np.shape(sample_weight)}") from None
    values = values * weights
    if values.ndim > 1:
        values = values.reshape(len(values), -1).mean(axis=1)
        weights = weights.reshape(len(weights), -1).mean(axis=1)
    return values.reshape(-1), weights.reshape(-1)


class Mean(Metric):
    """The weighted mean of every value given: sum(w * v) / sum(w), weights 1 by default; 0
    before any weight was seen."""

    def reset_state(self):
        self.total, self.count = 0.0, 0.0

    def update_state(self, values, sample_weight=None):
        values, weights = samplewise(values, sample_weight)
        self.total += float(values.sum())
        self.count += float(weights.sum())

    def result(self):
        return self.total / self.count if self.count else 0.0


class MeanMetricWrapper(Mean):
    """The weighted mean of ``fn(y_true, y_pred, **kwargs)``, a function returning one value per
    sample or per position. y_true and y_pred first have their ranks matched as Keras does."""

    def __init__(self, fn, name=None, dtype=None, **kwargs):
        if not callable(fn):
            raise TypeError(f"Expected fn to be a function, received {fn!r:.200}")
        self._fn, self._fn_kwargs = fn, kwargs
        super().__init__(name=name or getattr(fn, "__name__", None), dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = same_rank(real_array(y_true, "y_true"), real_array(y_pred, "y_pred"))
        super().update_state(self._fn(y_true, y_pred, **self._fn_kwargs), sample_weight)

    def get_config(self):
        config = {**super().get_config(), **self._fn_kwargs}
        if type(self) is MeanMetricWrapper:  # a subclass's constructor names its own function
            config["fn"] = self._fn.__name__
        return config
