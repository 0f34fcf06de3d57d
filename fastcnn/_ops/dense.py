"""Fully connected layers: checked calls of ``_ext.dense``."""
from .._ext import dense as _dense
from .checks import (as_kernel_array, bias_array, check_apart, check_array, check_index_range,
                     check_weight_shape, flag, out_buffer, weights_array)
from .threads import effective_n_threads


def _dense_operand(a, name, n=None, axis=1, what="features"):
    """``a`` (rank 2) with ``n`` entries on ``axis``. The dense kernels index a whole batch as
    one image with 32-bit ints, so all of it must fit, not each sample."""
    a = check_array(a, name, 2)
    if n is not None and a.shape[axis] != n:
        raise ValueError(f"Expected {name} with {n} {what}, received shape {a.shape}")
    check_index_range(a.shape, name, batch_axis=False)
    return a


def _times_kernel(a, name, kernel, kernel_axis):
    """The checked kernel, ``a`` and product shape of ``a @ kernel`` (``kernel_axis`` 0, the
    forward pass) or ``a @ kernel.T`` (``kernel_axis`` 1, the input gradient)."""
    kernel = weights_array(kernel, "kernel", 2)
    a = _dense_operand(a, name, kernel.shape[kernel_axis])
    shape = (a.shape[0], kernel.shape[1 - kernel_axis])
    check_index_range(shape, "out", batch_axis=False)
    return kernel, as_kernel_array(a, name, 2, kernel.dtype), shape


def dense_forward(x, kernel, bias, relu=False, out=None, n_threads=None):
    n_threads = effective_n_threads(n_threads)
    kernel, x, shape = _times_kernel(x, "x", kernel, 0)
    bias = bias_array(bias, kernel.shape[1], kernel.dtype)
    out = out_buffer(out, shape, kernel.dtype, "out")
    check_apart({"out": out}, {"x": x, "kernel": kernel, "bias": bias})
    _dense.dense_forward(x, kernel, bias, out, flag(relu, "relu"), n_threads)
    return out


def dense_backward_input(dy, kernel, out=None, n_threads=None):
    n_threads = effective_n_threads(n_threads)
    kernel, dy, shape = _times_kernel(dy, "dy", kernel, 1)
    dx = out_buffer(out, shape, kernel.dtype, "out")
    check_apart({"out": dx}, {"dy": dy, "kernel": kernel})
    _dense.dense_backward_input(dy, kernel, dx, n_threads)
    return dx


def dense_backward_weight(x, dy, dw=None, db=None, n_threads=None):
    n_threads = effective_n_threads(n_threads)
    x = _dense_operand(x, "x")
    dy = _dense_operand(dy, "dy", x.shape[0], 0, "rows")
    kernel_shape = (x.shape[1], dy.shape[1])
    check_weight_shape(kernel_shape, "dw")
    x = as_kernel_array(x, "x", 2)
    dy = as_kernel_array(dy, "dy", 2, x.dtype)
    dw = out_buffer(dw, kernel_shape, x.dtype, "dw")
    db = None if db is None else out_buffer(db, kernel_shape[1:], x.dtype, "db")
    check_apart({"dw": dw, "db": db}, {"x": x, "dy": dy})
    _dense.dense_backward_weight(x, dy, dw, db, n_threads)
    return dw
