"""Reductions over axes: checked calls of ``_ext.reduce``. The reduced axes, when they are one
block of neighbouring axes, are the middle of an (outer, n, inner) view of the array; otherwise
they are moved last (``rows``) in a copy, and inner is 1. Running sums (cumsum) run along one
axis, the middle of (outer, n, inner)."""
import math

import numpy as np

from .._ext import reduce as _reduce
from .checks import as_kernel_array, check_array, choice_arg, flag, out_buffer
from .rows import as_rows, from_rows, rows_buffer, rows_layout
from .threads import effective_n_threads

REDUCTIONS = ("sum", "mean", "max", "min", "prod")


def _axes_arg(axes, ndim):
    if (not isinstance(axes, (tuple, list)) or sorted(set(axes)) != list(axes)
            or any(isinstance(a, bool) or not isinstance(a, (int, np.integer)) or not 0 <= a < ndim
                   for a in axes)):
        raise ValueError(f"Expected axes to be sorted distinct ints in [0, {ndim}), received "
                         f"axes={axes!r:.200}")
    return tuple(int(a) for a in axes)


def _layout(shape, axes):
    """(outer, n, inner, the rows permutation or None, its R and K) of x reduced over axes."""
    if axes and axes == tuple(range(axes[0], axes[-1] + 1)):
        return (math.prod(shape[:axes[0]]), math.prod(shape[a] for a in axes),
                math.prod(shape[axes[-1] + 1:]), None, 0, 0)
    perm, rows, k = rows_layout(shape, axes)
    return rows, k, 1, perm, rows, k


def _operands(x, axes):
    x = as_kernel_array(check_array(x, "x"), "x")
    axes = _axes_arg(axes, x.ndim)
    outer, n, inner, perm, rows, k = _layout(x.shape, axes)
    view = (as_rows(x, perm, rows, k) if perm is not None else x).reshape(outer, n, inner)
    return x, axes, view, (outer, inner), tuple(d for a, d in enumerate(x.shape) if a not in axes)


def reduce_forward(op, x, axes, out=None, n_threads=None):
    """``op`` ("sum", "mean", "max", "min" or "prod") of float x over ``axes`` (sorted distinct
    ints), of the kept axes' shape; NaN wins max and min. Sums and products accumulate in
    double."""
    n_threads = effective_n_threads(n_threads)
    choice_arg(op, REDUCTIONS, "op")
    x, axes, view, kept, shape = _operands(x, axes)
    out = out_buffer(out, shape, x.dtype, "out")
    if view.shape[1] == 0:
        if op in ("max", "min"):
            raise ValueError(f"Expected values to take the {op} of, received an empty axis")
        out[...] = {"sum": 0, "prod": 1}.get(op, np.nan)
        return out
    _reduce.reduce_forward(op, view, out.reshape(kept), n_threads)
    return out


def extreme_backward(x, y, dy, axes, out=None, n_threads=None):
    """The gradient of reduce_forward's max or min over ``axes`` (y its output): dy split
    evenly among the entries of x equal to y."""
    n_threads = effective_n_threads(n_threads)
    x, axes, view, kept, shape = _operands(x, axes)
    y = as_kernel_array(y, "y", dtype=x.dtype, shape=shape)
    dy = as_kernel_array(dy, "dy", dtype=x.dtype, shape=shape)
    dx = out_buffer(out, x.shape, x.dtype, "out")
    outer, n, inner, perm, rows, k = _layout(x.shape, axes)
    target = rows_buffer(dx, perm, rows, k) if perm is not None else dx
    _reduce.extreme_backward(view, y.reshape(kept), dy.reshape(kept),
                             target.reshape(outer, n, inner), n_threads)
    from_rows(target, perm, dx)
    return dx


def cumsum(x, axis, reverse=False, out=None, n_threads=None):
    """The running sums of float x along ``axis`` (an int in [0, ndim)), of x's shape, in
    double; from the end with ``reverse`` (the sums of the later values: cumsum's gradient)."""
    n_threads = effective_n_threads(n_threads)
    x = as_kernel_array(check_array(x, "x"), "x")
    (axis,) = _axes_arg((axis,), x.ndim)
    reverse = flag(reverse, "reverse")
    out = out_buffer(out, x.shape, x.dtype, "out")
    lines = (math.prod(x.shape[:axis]), x.shape[axis], math.prod(x.shape[axis + 1:]))
    _reduce.cumsum(x.reshape(lines), out.reshape(lines), reverse, n_threads)
    return out
