"""Convolution, and the fused convolution + max-pooling step: checked calls of ``_ext.conv``."""
import numpy as np

from .._ext import conv as _conv
from .checks import (argmax_array, as_kernel_array, bias_array, check_apart, check_array,
                     check_index_range,
                     check_weight_shape, memoized, out_buffer, shape_arg, weights_array,
                     window_output_shape)
from .dropout import dropout_args
from .threads import effective_n_threads


@memoized
def _conv_geometry(x_shape, kernel_shape, strides, padding, x_name="x"):
    """(output shape, pad_top, pad_left), once every per-image size the kernels index with 32-bit
    ints fits: the input, the output, and the padded input they copy windows from."""
    if x_shape[3] != kernel_shape[2]:
        raise ValueError(f"Expected {x_name} with {kernel_shape[2]} channels to match the kernel "
                         f"of shape {tuple(kernel_shape)}, received shape {tuple(x_shape)}")
    (oh, ow), (top, left) = window_output_shape(x_shape[1:3], kernel_shape[:2], strides, padding,
                                                "kernel_size")
    shape = (x_shape[0], oh, ow, kernel_shape[3])
    padded = (x_shape[0], (oh - 1) * strides[0] + kernel_shape[0],
              (ow - 1) * strides[1] + kernel_shape[1], x_shape[3])
    check_index_range(x_shape, x_name)
    check_index_range(shape, "conv output")
    check_index_range(padded, f"padded {x_name}")
    return shape, top, left


def conv2d_forward(x, kernel, bias, strides, padding, relu=False, out=None, n_threads=None):
    """NHWC x, HWIO kernel -> NHWC out, with bias and relu fused when given."""
    n_threads = effective_n_threads(n_threads)
    kernel = weights_array(kernel, "kernel", 4)
    shape, top, left = _conv_geometry(check_array(x, "x", 4).shape, kernel.shape, strides, padding)
    x = as_kernel_array(x, "x", 4, kernel.dtype)
    bias = bias_array(bias, kernel.shape[3], kernel.dtype)
    out = out_buffer(out, shape, kernel.dtype, "out")
    check_apart({"out": out}, {"x": x, "kernel": kernel, "bias": bias})
    _conv.conv2d_forward(x, kernel, bias, out, strides[0], strides[1], top, left, relu, n_threads)
    return out


def conv2d_backward_input(dy, kernel, input_shape, strides, padding, out=None, n_threads=None):
    n_threads = effective_n_threads(n_threads)
    kernel = weights_array(kernel, "kernel", 4)
    input_shape = shape_arg(input_shape, "input_shape", 4)
    shape, top, left = _conv_geometry(input_shape, kernel.shape, strides, padding, "input_shape")
    dy = as_kernel_array(dy, "dy", dtype=kernel.dtype, shape=shape)
    dx = out_buffer(out, input_shape, kernel.dtype, "out")
    check_apart({"out": dx}, {"dy": dy, "kernel": kernel})
    _conv.conv2d_backward_input(dy, kernel, dx, strides[0], strides[1], top, left, n_threads)
    return dx


def conv2d_backward_weight(x, dy, kernel_shape, strides, padding, dw=None, db=None,
                           n_threads=None):
    n_threads = effective_n_threads(n_threads)
    kernel_shape = shape_arg(kernel_shape, "kernel_shape", 4)
    check_weight_shape(kernel_shape, "kernel_shape")
    shape, top, left = _conv_geometry(check_array(x, "x", 4).shape, kernel_shape, strides, padding)
    x = as_kernel_array(x, "x", 4)
    dy = as_kernel_array(dy, "dy", dtype=x.dtype, shape=shape)
    dw = out_buffer(dw, kernel_shape, x.dtype, "dw")
    db = None if db is None else out_buffer(db, kernel_shape[3:], x.dtype, "db")
    check_apart({"dw": dw, "db": db}, {"x": x, "dy": dy})
    _conv.conv2d_backward_weight(x, dy, dw, db, strides[0], strides[1], top, left, n_threads)
    return dw


@memoized
def _conv_pool_geometry(x_shape, kernel_shape, strides, padding, pool_size, pool_strides,
                        x_name="x"):
    """(pooled shape, pad_top, pad_left) of a convolution followed by "valid" max pooling."""
    shape, top, left = _conv_geometry(x_shape, kernel_shape, strides, padding, x_name)
    (ph, pw), _ = window_output_shape(shape[1:3], pool_size, pool_strides, "valid", "pool_size")
    return (shape[0], ph, pw, shape[3]), top, left


def conv2d_maxpool_forward(x, kernel, bias, strides, padding, pool_size, pool_strides, relu=False,
                           out=None, argmax=None, dropout=None, n_threads=None):
    """maxpool(relu?(conv(x, kernel) + bias)) with "valid" pooling, in one float32 pass that
    computes only the conv outputs some window reads. Returns (pooled, argmax); argmax indexes
    that part of the conv output, of shape (n, (ph-1)*stride+pool, (pw-1)*stride+pool, c_out).
    ``dropout=(seed, rate)`` also applies dropout_forward(pooled, seed, rate) in the same pass."""
    n_threads = effective_n_threads(n_threads)
    kernel = weights_array(kernel, "kernel", 4).astype(np.float32, copy=False)
    shape, top, left = _conv_pool_geometry(check_array(x, "x", 4).shape, kernel.shape, strides,
                                           padding, pool_size, pool_strides)
    x = as_kernel_array(x, "x", 4, np.float32)
    bias = bias_array(bias, kernel.shape[3], np.float32)
    out = out_buffer(out, shape, np.float32, "out")
    argmax = out_buffer(argmax, shape, np.int32, "argmax")
    check_apart({"out": out, "argmax": argmax}, {"x": x, "kernel": kernel, "bias": bias})
    _conv.conv2d_maxpool_forward(x, kernel, bias, out, argmax, strides[0], strides[1], top, left,
                                 relu, *pool_size, *pool_strides, n_threads,
                                 *dropout_args(dropout))
    return out, argmax


def conv2d_maxpool_backward(x, dy, pooled, argmax, kernel, strides, padding, pool_size,
                            pool_strides, relu=False, dw=None, db=None, dx=None, need_dx=True,
                            input_relu=False, dropout=None, n_threads=None):
    """The gradients of conv2d_maxpool_forward from dy, its output's gradient: returns (dw, dx),
    dx None unless need_dx, and fills db when given. ``pooled`` (its output) is needed with relu.
    ``input_relu``: x is a relu's output, and dx also gets that relu's backward (zero where x <= 0).
    ``dropout``: the forward's."""
    n_threads = effective_n_threads(n_threads)
    kernel = weights_array(kernel, "kernel", 4).astype(np.float32, copy=False)
    shape, top, left = _conv_pool_geometry(check_array(x, "x", 4).shape, kernel.shape, strides,
                                           padding, pool_size, pool_strides)
    x = as_kernel_array(x, "x", 4, np.float32)
    dy = as_kernel_array(dy, "dy", dtype=np.float32, shape=shape)
    argmax = argmax_array(argmax, shape)
    if relu:
        pooled = as_kernel_array(pooled, "pooled", dtype=np.float32, shape=shape)
    else:
        pooled = None
    dw = out_buffer(dw, kernel.shape, np.float32, "dw")
    db = None if db is None else out_buffer(db, kernel.shape[3:], np.float32, "db")
    dx = out_buffer(dx, x.shape, np.float32, "dx") if need_dx else None
    check_apart({"dw": dw, "db": db, "dx": dx},
                {"x": x, "dy": dy, "pooled": pooled, "argmax": argmax, "kernel": kernel})
    skipped = _conv.conv2d_maxpool_backward(x, dy, pooled, argmax, kernel, dw, db, dx,
                                            strides[0], strides[1], top, left, relu, *pool_size,
                                            *pool_strides, input_relu, n_threads,
                                            *dropout_args(dropout))
    if skipped:
        raise ValueError(f"Expected every argmax entry to point into its own pooling window, as "
                         f"conv2d_maxpool_forward's do; {skipped} did not")
    return dw, dx
