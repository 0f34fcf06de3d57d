"""Reductions over axes, with ``axis`` (None: all, an int or a tuple) and ``keepdims``.

Each reduction's gradient spreads ``dy`` back over the reduced axes: evenly for mean, among the
places that hold the extreme value (split evenly at ties, as TensorFlow does) for max and min,
and through the ops they are composed of for var, std and logsumexp.
"""
import math

import numpy as np

from .._ops import program as programs
from .._ops import reduce as reduce_ops
from .arithmetic import add, exp, isfinite, log, sqrt, square, stop_gradient, subtract, where
from .core import KERNEL_DTYPES, Op, Spec, normalize_axis, recordable, result_dtype, spec_of
from .shape import squeeze
from .tracing import current_scope


def _kernel_reduce(op, x, axes, keepdims):
    """The reduce kernel's answer for a float array, or None for other dtypes (NumPy's)."""
    if x.dtype not in KERNEL_DTYPES or not axes:
        return None
    out = reduce_ops.reduce_forward(op, x, axes)
    return np.expand_dims(out, axes) if keepdims else out


class Reduction(Op):
    def __init__(self, axis=None, keepdims=False):
        self.axis, self.keepdims = axis, bool(keepdims)

    def _axes(self, ndim):
        return normalize_axis(self.axis, ndim)

    def spec(self, x):
        axes = self._axes(len(x.shape))
        shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape)) if self.keepdims \
            else tuple(d for i, d in enumerate(x.shape) if i not in axes)
        return Spec(shape, self._dtype(x))

    def _dtype(self, x):
        return result_dtype(lambda v: self.reduce(np.zeros(1, np.asarray(v).dtype), (0,), False),
                            x)

    def compute(self, x):
        x = np.asarray(x)
        return np.asarray(self.reduce(x, self._axes(x.ndim), self.keepdims))

    def _kept(self, a, x):
        """``a`` (a reduced result) with the reduced axes restored as size 1."""
        return a if self.keepdims else np.expand_dims(a, self._axes(np.ndim(x)))

    def _count(self, x):
        return math.prod(np.shape(x)[a] for a in self._axes(np.ndim(x)))


class _Kernel(Reduction):
    """A reduction the reduce kernels run on float arrays: ``name`` is its kernel op and NumPy
    function."""

    def __init__(self, name, axis=None, keepdims=False):
        super().__init__(axis, keepdims)
        self.name = name

    def reduce(self, x, axes, keepdims):
        out = _kernel_reduce(self.name, x, axes, keepdims) if x.size else None
        return getattr(np, self.name)(x, axis=axes, keepdims=keepdims) if out is None else out


class _Total(_Kernel):
    """sum, and mean: the sum over the count. Over the last axis alone, the planner may fuse
    it at the end of a program (``row_sum``)."""

    def fusion(self, n_operands):
        return "row_sum"

    def row_divisor(self, ndim):
        """(whether it reduces the last axis alone, over the count for a mean)."""
        return self._axes(ndim) == (ndim - 1,) and ndim > 0, self.name == "mean"

    def gradients(self, dy, xs, y, needed):
        scale = 1 / self._count(xs[0]) if self.name == "mean" else 1
        return [np.broadcast_to(self._kept(dy, xs[0]) * scale, np.shape(xs[0]))]


class _Extreme(_Kernel):
    """max and min."""

    def gradients(self, dy, xs, y, needed):
        x = xs[0]
        axes = self._axes(x.ndim)
        if x.dtype in KERNEL_DTYPES and dy.dtype == x.dtype and axes:
            kept = tuple(d for a, d in enumerate(x.shape) if a not in axes)
            return [reduce_ops.extreme_backward(x, y.reshape(kept), dy.reshape(kept), axes)]
        mask = x == self._kept(y, x)
        count = mask.sum(axis=axes, keepdims=True)
        return [mask * (self._kept(dy, x) / count)]


class _ArgExtreme(Op):
    def __init__(self, fn, axis, keepdims):
        self.fn, self.axis, self.keepdims = fn, axis, bool(keepdims)

    def compute(self, x):
        x = np.asarray(x)
        if self.axis is not None:
            normalize_axis(self.axis, x.ndim)
        return np.asarray(self.fn(x, axis=self.axis, keepdims=self.keepdims))

    def spec(self, x):
        if self.axis is None:
            shape = (1,) * len(x.shape) if self.keepdims else ()
        else:
            (a,) = normalize_axis(self.axis, len(x.shape))
            shape = tuple(1 if i == a else d for i, d in enumerate(x.shape)) if self.keepdims \
                else x.shape[:a] + x.shape[a + 1:]
        return Spec(shape, "int64")


@recordable
def sum(x, axis=None, keepdims=False):
    return _Total("sum", axis, keepdims)(x)


@recordable
def mean(x, axis=None, keepdims=False):
    return _Total("mean", axis, keepdims)(x)


@recordable
def max(x, axis=None, keepdims=False, initial=None):
    if initial is not None:
        raise ValueError(f"Expected initial=None, received initial={initial!r}")
    return _Extreme("max", axis, keepdims)(x)


@recordable
def min(x, axis=None, keepdims=False, initial=None):
    if initial is not None:
        raise ValueError(f"Expected initial=None, received initial={initial!r}")
    return _Extreme("min", axis, keepdims)(x)


amax, amin = max, min


_VARIANCE_PROGRAMS = {}  # (dtype, count) -> the program of _eager_var


def _eager_var(x, axis, keepdims):
    """var of an array that no op records, over trailing axes, in two passes: the mean (the
    reduce kernel), then one program that takes each deviation from it, squares it and averages
    the squares along the row, with no array of deviations between them. Those are the steps
    of var's composition, row_sum being the reduce kernel's mean, so the bits are the same.
    None where it does not apply."""
    if type(x) is not np.ndarray or x.dtype not in KERNEL_DTYPES or current_scope() is not None:
        return None
    axes = normalize_axis(axis, x.ndim)
    count = math.prod(x.shape[a] for a in axes)
    if not axes or axes != tuple(range(x.ndim - len(axes), x.ndim)) or not x.size:
        return None
    x = np.ascontiguousarray(x)
    key = (x.dtype, count)
    program = _VARIANCE_PROGRAMS.get(key)
    if program is None:
        b = programs.Builder()
        b.row_sum(b.op("square", b.op("subtract", b.input(), b.input("row"))), count)
        program = b.build(x.dtype)
        if len(_VARIANCE_PROGRAMS) < 64:
            _VARIANCE_PROGRAMS[key] = program
    center = reduce_ops.reduce_forward("mean", x, axes)
    (out,) = programs.run(program, [x, center.reshape(-1)], x.size // count, count)
    out = out.reshape(center.shape)
    return np.expand_dims(out, axes) if keepdims else out


@recordable
def var(x, axis=None, keepdims=False):
    """The mean square deviation from the mean, composed of kernel-backed ops (as NumPy
    computes it), which differentiate it; on a float array, the same steps fused (_eager_var)."""
    out = _eager_var(x, axis, keepdims)
    if out is not None:
        return out
    deviation = subtract(x, mean(x, axis=axis, keepdims=True))
    return mean(square(deviation), axis=axis, keepdims=keepdims)


@recordable
def std(x, axis=None, keepdims=False):
    """The root of var: its gradient at zero variance is NaN (0 / 0)."""
    return sqrt(var(x, axis=axis, keepdims=keepdims))


@recordable
def logsumexp(x, axis=None, keepdims=False):
    """log(sum(exp(x))) with the largest value taken out before exp (0 where it is not finite,
    so that -inf everywhere gives -inf): its gradient is the softmax of x."""
    peak = max(x, axis=axis, keepdims=True)
    peak = stop_gradient(where(isfinite(peak), peak, 0))
    total = sum(exp(subtract(x, peak)), axis=axis, keepdims=keepdims)
    if not keepdims:
        peak = squeeze(peak, normalize_axis(axis, len(spec_of(x).shape)))
    return add(log(total), peak)


@recordable
def prod(x, axis=None, keepdims=False, dtype=None):
    if dtype is not None:
        raise ValueError(f"Expected dtype=None, received dtype={dtype!r}")
    return _Kernel("prod", axis, keepdims)(x)


class _CumSum(Op):
    """Running sums along an axis (of the flattened array for axis None): the reduce module's
    cumsum kernel for float arrays, and from the end for the gradient (the sums of the later
    dy)."""

    def __init__(self, axis):
        self.axis = axis

    def _run(self, x, reverse):
        """The kernel's running sums of the float array ``x``, else None."""
        if x.dtype not in KERNEL_DTYPES:
            return None
        lines = x.reshape(-1) if self.axis is None else x
        (axis,) = normalize_axis(0 if self.axis is None else self.axis, lines.ndim)
        return reduce_ops.cumsum(lines, axis, reverse)

    def compute(self, x):
        x = np.asarray(x)
        out = self._run(x, False)
        return np.cumsum(x, axis=self.axis) if out is None else out

    def spec(self, x):
        if self.axis is None:
            n = None if None in x.shape else int(np.prod(x.shape))
            return Spec((n,), result_dtype(np.cumsum, x))
        normalize_axis(self.axis, len(x.shape))
        return Spec(x.shape, result_dtype(np.cumsum, x))

    def gradients(self, dy, xs, y, needed):
        x = np.asarray(xs[0])
        g = self._run(np.asarray(dy), True)
        if g is None:
            axis = 0 if self.axis is None else self.axis
            g = np.flip(np.cumsum(np.flip(dy, axis), axis=axis), axis)
        return [g.reshape(x.shape)]


@recordable
def cumsum(x, axis=None, dtype=None):
    if dtype is not None:
        raise ValueError(f"Expected dtype=None, received dtype={dtype!r}")
    return _CumSum(axis)(x)


@recordable
def argmax(x, axis=None, keepdims=False):
    return _ArgExtreme(np.argmax, axis, keepdims)(x)


@recordable
def argmin(x, axis=None, keepdims=False):
    return _ArgExtreme(np.argmin, axis, keepdims)(x)


@recordable
def all(x, axis=None, keepdims=False):
    return _Any(np.all, axis, keepdims)(x)


@recordable
def any(x, axis=None, keepdims=False):
    return _Any(np.any, axis, keepdims)(x)


class _Any(Reduction):
    def __init__(self, fn, axis, keepdims):
        super().__init__(axis, keepdims)
        self.fn = fn

    def reduce(self, x, axes, keepdims):
        return self.fn(x, axis=axes, keepdims=keepdims)

    def _dtype(self, x):
        return np.dtype(bool)
