"""Elementwise arithmetic with NumPy's broadcasting, and the comparisons.

Add, subtract, multiply, divide, maximum and minimum of floating operands run the merge kernels
(broadcast strides; the gradients of multiply, divide, maximum and minimum too, with their sum
over broadcast axes in the same pass; those of add and subtract are dy itself, or -dy, summed
back by the reduce kernel where broadcast); the other functions are single whole-array NumPy
calls. Gradients of maximum and minimum go to
the first operand at ties, as TensorFlow's do.
"""
import numbers

import numpy as np

from .._ops import merge
from .core import (
    KERNEL_DTYPES,
    Op,
    Spec,
    broadcast_shapes,
    checked_operand,
    recordable,
    result_dtype,
)


def _kernel_operands(xs):
    """The operands as arrays of their common float dtype when the merge kernels can take
    them (every operand floating, or a Python number), else None."""
    dtype = np.result_type(*xs)
    if dtype not in KERNEL_DTYPES:
        return None
    return [np.asarray(x, dtype) for x in xs]


class Elementwise(Op):
    """An elementwise function of broadcast operands: ``fn`` the NumPy function, ``grad(dy,
    xs, y)`` the gradients before they are summed back over broadcast axes, ``kernel`` the merge
    kernel's op name where one exists."""

    def __init__(self, fn, grad=None, kernel=None, dtype=None):
        self.fn, self.grad, self.kernel, self.dtype = fn, grad, kernel, dtype

    def compute(self, *xs):
        if self.kernel is not None:
            arrays = _kernel_operands(xs)
            if arrays is not None:
                return merge.elementwise_forward(self.kernel, arrays)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return np.asarray(self.fn(*xs))

    def spec(self, *specs):
        dtype = self.dtype or result_dtype(self.fn, *specs)
        return Spec(broadcast_shapes(*(s.shape for s in specs)), dtype)

    def gradients(self, dy, xs, y, needed):
        if self.grad is None:
            return [None] * len(xs)
        if self.kernel is not None and self.kernel not in ("add", "subtract") \
                and dy.dtype in KERNEL_DTYPES:
            arrays = _kernel_operands(xs)
            if arrays is not None:
                return [merge.elementwise_backward(self.kernel, dy, arrays, i) if needed[i]
                        else None for i in range(len(xs))]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return self.grad(dy, xs, y)

    def __repr__(self):
        return f"Elementwise({self.fn.__name__})"


def _first_wins(compare):
    def grad(dy, xs, y):
        mask = compare(xs[0], xs[1])
        return [dy * mask, dy * ~mask]
    return grad


def _power_grad(dy, xs, y):
    a, b = xs
    da = dy * b * np.power(a, np.asarray(b) - 1)
    db = None
    if np.asarray(b).dtype.kind == "f" or isinstance(b, float):
        db = dy * y * np.log(np.where(a > 0, a, 1))  # 0 where a <= 0, as JAX's power gives
    return [da, db]


def _public(name, op, n_operands):
    """The public function ``name``, which applies ``op`` to its x (one operand) or x1, x2."""
    if n_operands == 1:
        def fn(x):
            return op(x)
    else:
        def fn(x1, x2):
            return op(x1, x2)
    fn.__name__ = fn.__qualname__ = name
    return recordable(fn)


add = _public("add", Elementwise(np.add, lambda dy, xs, y: [dy, dy], "add"), 2)
subtract = _public("subtract", Elementwise(np.subtract, lambda dy, xs, y: [dy, -dy], "subtract"),
                   2)
multiply = _public("multiply", Elementwise(np.multiply, lambda dy, xs, y: [dy * xs[1], dy * xs[0]],
                                           "multiply"), 2)
divide = _public("divide", Elementwise(np.true_divide,
                                       lambda dy, xs, y: [dy / xs[1], -dy * y / xs[1]], "divide"),
                 2)
true_divide = divide
power = _public("power", Elementwise(np.power, _power_grad), 2)
maximum = _public("maximum", Elementwise(np.maximum, _first_wins(np.greater_equal), "maximum"), 2)
minimum = _public("minimum", Elementwise(np.minimum, _first_wins(np.less_equal), "minimum"), 2)
negative = _public("negative", Elementwise(np.negative, lambda dy, xs, y: [-dy]), 1)
square = _public("square", Elementwise(np.square, lambda dy, xs, y: [2 * xs[0] * dy]), 1)
sqrt = _public("sqrt", Elementwise(np.sqrt, lambda dy, xs, y: [dy / (2 * y)]), 1)
abs = _public("abs", Elementwise(np.abs, lambda dy, xs, y: [dy * np.sign(xs[0])]), 1)
absolute = abs
exp = _public("exp", Elementwise(np.exp, lambda dy, xs, y: [dy * y]), 1)
log = _public("log", Elementwise(np.log, lambda dy, xs, y: [dy / xs[0]]), 1)
log1p = _public("log1p", Elementwise(np.log1p, lambda dy, xs, y: [dy / (1 + xs[0])]), 1)
expm1 = _public("expm1", Elementwise(np.expm1, lambda dy, xs, y: [dy * (y + 1)]), 1)
log2 = _public("log2", Elementwise(np.log2, lambda dy, xs, y: [dy / (xs[0] * np.log(2.0))]), 1)
log10 = _public("log10", Elementwise(np.log10, lambda dy, xs, y: [dy / (xs[0] * np.log(10.0))]),
                1)
sin = _public("sin", Elementwise(np.sin, lambda dy, xs, y: [dy * np.cos(xs[0])]), 1)
cos = _public("cos", Elementwise(np.cos, lambda dy, xs, y: [-dy * np.sin(xs[0])]), 1)
stop_gradient = _public("stop_gradient", Elementwise(np.positive), 1)
mod = _public("mod", Elementwise(np.mod), 2)
floor_divide = _public("floor_divide", Elementwise(np.floor_divide), 2)
isnan, isinf, isfinite = (_public(name, Elementwise(getattr(np, name), dtype="bool"), 1)
                          for name in ("isnan", "isinf", "isfinite"))
sign = _public("sign", Elementwise(np.sign), 1)
floor = _public("floor", Elementwise(np.floor), 1)
_ROUND = Elementwise(np.round)


@recordable
def round(x, decimals=0):
    if isinstance(decimals, bool) or not isinstance(decimals, numbers.Integral) or decimals != 0:
        raise ValueError(f"Expected decimals=0, received decimals={decimals!r}")
    return _ROUND(x)


class _Clip(Op):
    def __init__(self, x_min, x_max):
        self.x_min, self.x_max = x_min, x_max

    def compute(self, x):
        return np.asarray(np.clip(x, self.x_min, self.x_max))

    def spec(self, x):
        return Spec(x.shape, result_dtype(lambda v: np.clip(v, self.x_min, self.x_max), x))

    def gradients(self, dy, xs, y, needed):
        x = xs[0]
        return [dy * ((x >= self.x_min) & (x <= self.x_max))]


@recordable
def clip(x, x_min, x_max):
    """Values of ``x`` limited to [x_min, x_max] (numbers); the gradient passes where x is
    inside, bounds included."""
    return _Clip(checked_operand(x_min), checked_operand(x_max))(x)


class _Where(Op):
    def compute(self, condition, x1, x2):
        return np.asarray(np.where(condition, x1, x2))

    def spec(self, condition, x1, x2):
        return Spec(broadcast_shapes(condition.shape, x1.shape, x2.shape),
                    result_dtype(lambda a, b: np.where(True, a, b), x1, x2))

    def gradients(self, dy, xs, y, needed):
        condition = np.asarray(xs[0], bool)
        return [None, np.where(condition, dy, 0), np.where(condition, 0, dy)]


@recordable
def where(condition, x1=None, x2=None):
    if x1 is None or x2 is None:
        raise ValueError("Expected both x1 and x2: where(condition) alone gives indices, which "
                         "fastcnn does not provide")
    return _Where()(condition, x1, x2)


# The comparisons and logical functions: bool results, no gradient.
equal, not_equal, greater, greater_equal, less, less_equal, logical_and, logical_or = (
    _public(name, Elementwise(getattr(np, name), dtype="bool"), 2)
    for name in ("equal", "not_equal", "greater", "greater_equal", "less", "less_equal",
                 "logical_and", "logical_or"))
logical_not = _public("logical_not", Elementwise(np.logical_not, dtype="bool"), 1)


# The NumPy ufuncs behind Python's operators: what a KerasTensor's operator maps to when a
# NumPy array is on its left, and a weight's arithmetic inside a traced call (core.Variable).
OPERATOR_UFUNCS = {"add": add, "subtract": subtract, "multiply": multiply,
                   "true_divide": divide, "divide": divide, "power": power,
                   "negative": negative, "equal": equal, "not_equal": not_equal,
                   "greater": greater, "greater_equal": greater_equal, "less": less,
                   "less_equal": less_equal}
