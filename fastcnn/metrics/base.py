"""The metric protocol, Keras 3's: state that ``update_state`` accumulates batch by batch,
``result`` reads and ``reset_state`` clears, kept by a user's metric in ``Variable``s; ``Mean``,
the weighted mean of values that most metrics reduce to; and ``MeanMetricWrapper``, the mean of a
function's values.

fastcnn's metrics accumulate in float64 whatever their ``dtype`` (which names the precision
Keras would keep them in); ``result`` returns a Python float, or an array where Keras returns a
vector.
"""
import math
import numbers
import re

import numpy as np
import numpy.lib.mixins

from .._ops.checks import check_memory
from ..arguments import finite_float
from ..serialization import Configurable


def snake_case(name):
    """Keras's snake case of a class name: "TopKCategoricalAccuracy" ->
    "top_k_categorical_accuracy", "MeanIoU" -> "mean_io_u"."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


class Variable(np.lib.mixins.NDArrayOperatorsMixin):
    """A metric's state, as ``Metric.add_variable`` makes it: an array that ``assign``,
    ``assign_add`` and ``assign_sub`` update in place, that NumPy functions and operators read
    as an array, and that ``reset`` returns to its initial value."""

    def __init__(self, shape, initializer, dtype, name):
        self.name = name
        shape = _variable_shape(shape)
        # the initial value, its copy and the value itself
        check_memory([("a variable", 3 * math.prod(shape) * np.dtype(dtype).itemsize)], "shape")
        if initializer is None or _is_string(initializer, "zeros"):
            initial = np.zeros(shape, dtype)
        elif _is_string(initializer, "ones"):
            initial = np.ones(shape, dtype)
        elif finite_float(initializer) is not None:
            initial = np.full(shape, finite_float(initializer), dtype)
        elif callable(initializer):
            initial = np.asarray(initializer(shape, dtype=dtype), dtype)
        else:
            raise ValueError(f"Expected initializer 'zeros', 'ones', a number or a function of "
                             f"(shape, dtype), received initializer={initializer!r:.200}")
        self._initial = np.broadcast_to(initial, shape).copy()
        self.value = self._initial.copy()

    @property
    def shape(self):
        return self.value.shape

    @property
    def dtype(self):
        return self.value.dtype

    def reset(self):
        self.value[...] = self._initial

    def assign(self, value):
        self.value[...] = real_array(value, "value")
        return self

    def assign_add(self, value):
        self.value += real_array(value, "value")
        return self

    def assign_sub(self, value):
        self.value -= real_array(value, "value")
        return self

    def numpy(self):
        return self.value.copy()

    def __array__(self, dtype=None, copy=None):
        return self.value if dtype is None else self.value.astype(dtype)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        inputs = [i.value if isinstance(i, Variable) else i for i in inputs]
        if "out" in kwargs:
            kwargs["out"] = tuple(o.value if isinstance(o, Variable) else o
                                  for o in kwargs["out"])
        return getattr(ufunc, method)(*inputs, **kwargs)

    def __float__(self):
        return float(self.value)

    def __repr__(self):
        return f"<Variable {self.name} value={self.value!r}>"


def _variable_shape(shape):
    """``shape`` (an int, or a list or tuple of them) as a tuple of non-negative ints."""
    dims = (shape,) if isinstance(shape, numbers.Integral) else shape
    if not isinstance(dims, (tuple, list)) or not all(
            isinstance(d, numbers.Integral) and not isinstance(d, bool) and d >= 0 for d in dims):
        raise ValueError(f"Expected shape to be a non-negative int or a tuple of them, received "
                         f"shape={shape!r:.200}")
    return tuple(int(d) for d in dims)


def _is_string(value, text):
    """Whether ``value`` is the string ``text`` (an array argument is compared with nothing:
    == would compare every element)."""
    return isinstance(value, str) and value == text


class Metric(Configurable):
    """Keras's Metric: ``update_state`` adds a batch to the state, ``result`` reads it and
    ``reset_state`` clears it.

    A subclass keeps its state in variables made by ``add_variable`` (or ``add_weight``) in its
    constructor, after calling ``super().__init__()``; the default ``reset_state`` returns them
    to their initial values. fastcnn's own metrics keep plain attributes, set by their
    ``reset_state``.

    ``metric(y_true, y_pred)`` updates the state with the batch and returns ``result()``, the
    value over every batch seen since the last reset, as Keras 3 does.
    """

    def __init__(self, dtype=None, name=None):
        if name is not None and not isinstance(name, str):
            raise TypeError(f"Expected name to be a string, received {name!r:.200}")
        self.name = name or snake_case(type(self).__name__)
        self.dtype = _float_dtype(dtype)
        self._variables = []

    def add_variable(self, shape=(), initializer="zeros", dtype=None, aggregation="sum",
                     name=None):
        """A state Variable of ``shape``, initially ``initializer`` ("zeros", "ones", a number,
        or a function of (shape, dtype)), of ``dtype`` (the metric's by default). Keras's
        ``aggregation`` (how replicas combine it) is accepted and has no effect here."""
        if "_variables" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}.__init__ must call super().__init__() "
                               "before adding variables")
        variable = Variable(shape, initializer, _float_dtype(dtype or self.dtype), name)
        self._variables.append(variable)
        return variable

    def add_weight(self, shape=(), initializer=None, dtype=None, name=None):
        return self.add_variable(shape, initializer, dtype, name=name)

    @property
    def variables(self):
        return list(self._variables)

    def update_state(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no update_state: a subclass of "
                                  "Metric defines update_state and result")

    def result(self):
        raise NotImplementedError(f"{type(self).__name__} has no result: a subclass of Metric "
                                  "defines update_state and result")

    def reset_state(self):
        for variable in self._variables:
            variable.reset()

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
    """``a`` as an array of real numbers (bools count as 0 and 1) whose float64 copy, which
    the metrics compute in, fits in memory (a broadcast view can be vast)."""
    a = np.asarray(a)
    if a.dtype.kind not in "fiub":
        raise TypeError(f"Expected {name} to hold real numbers, received dtype {a.dtype}")
    check_memory([(f"a float64 copy of {name}", 8 * a.size)], name)
    return a


def real_pair(y_true, y_pred):
    """y_true and y_pred as arrays of real numbers: the first check of every metric function
    and of every metric's update_state."""
    return real_array(y_true, "y_true"), real_array(y_pred, "y_pred")


def broadcast_weights(sample_weight, shape):
    """Sample weights broadcast to the predictions' shape; weights of their leading axes (one
    per sample) cover every prediction of the sample."""
    if sample_weight is None:
        return np.ones(shape)
    weight = real_array(sample_weight, "sample_weight")
    if 0 < weight.ndim < len(shape) and weight.shape == shape[:weight.ndim]:
        weight = weight.reshape(weight.shape + (1,) * (len(shape) - weight.ndim))
    try:
        return np.broadcast_to(weight, shape)
    except ValueError:
        raise ValueError(f"Expected sample_weight of a shape that broadcasts to y_pred's {shape}, "
                         f"received shape {weight.shape}") from None


def samplewise(values, sample_weight):
    """(per-sample values, their weights) whose sums give Keras's weighted mean.

    Without weights each sample's value is the mean of its values, and each weighs 1. With
    weights, of the values' shape or of their leading axes (a per-sample weight): the values are
    first averaged over the axes the weights lack, then multiplied by the weights; a sample's
    value and weight are then the means of those products and of its weights, so that
    sum(values) / sum(weights) is the weighted mean over every position.
    """
    values = real_array(values, "values").astype(np.float64, copy=False)
    if sample_weight is None:
        if values.ndim > 1:
            values = values.reshape(len(values), -1).mean(axis=1)
        return values.reshape(-1), np.ones(values.size)
    weights = real_array(sample_weight, "sample_weight").astype(np.float64, copy=False)
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

    def __init__(self, name="mean", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.reset_state()

    def reset_state(self):
        self.total, self.count = 0.0, 0.0

    def update_state(self, values, sample_weight=None):
        values, weights = samplewise(values, sample_weight)
        self.total += float(values.sum())
        self.count += float(weights.sum())

    def result(self):
        return self.total / self.count if self.count else 0.0


class Sum(Metric):
    """The weighted sum of every value given: sum(w * v), weights 1 by default."""

    def __init__(self, name="sum", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.reset_state()

    def reset_state(self):
        self.total = 0.0

    def update_state(self, values, sample_weight=None):
        values = real_array(values, "values").astype(np.float64, copy=False)
        if sample_weight is not None:
            values, weights = same_rank(values, real_array(sample_weight, "sample_weight"))
            values = values * broadcast_weights(weights, values.shape)
        self.total += float(values.sum())

    def result(self):
        return self.total


class MeanMetricWrapper(Mean):
    """The weighted mean of ``fn(y_true, y_pred, **kwargs)``, a function returning one value per
    sample or per position. y_true and y_pred first have their ranks matched as Keras does."""

    def __init__(self, fn, name=None, dtype=None, **kwargs):
        if not callable(fn):
            raise TypeError(f"Expected fn to be a function, received {fn!r:.200}")
        self._fn, self._fn_kwargs = fn, kwargs
        super().__init__(name=name or getattr(fn, "__name__", None), dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = same_rank(*real_pair(y_true, y_pred))
        super().update_state(self._fn(y_true, y_pred, **self._fn_kwargs), sample_weight)

    def get_config(self):
        config = {**super().get_config(), **self._fn_kwargs}
        if type(self) is MeanMetricWrapper:  # a subclass's constructor names its own function
            config["fn"] = self._fn.__name__
        return config
