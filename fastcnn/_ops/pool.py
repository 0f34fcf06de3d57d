"""Max, average and sum pooling, windowed and global: checked calls of ``_ext.pool``."""
import math

import numpy as np

from .._ext import pool as _pool
from .checks import (argmax_array, as_kernel_array, check_apart, check_array, input_shape_arg,
                     out_buffer,
                     scatter_backward_args, window_output_shape)
from .threads import effective_n_threads


def maxpool2d_forward(x, pool_size, strides, padding, out=None, argmax=None, n_threads=None):
    n_threads = effective_n_threads(n_threads)
    x = check_array(x, "x", 4)
    (oh, ow), (top, left) = window_output_shape(x.shape[1:3], pool_size, strides, padding,
                                                "pool_size")
    x = as_kernel_array(x, "x", 4)
    shape = (x.shape[0], oh, ow, x.shape[3])
    out = out_buffer(out, shape, x.dtype, "out")
    argmax = out_buffer(argmax, shape, np.int32, "argmax")
    check_apart({"out": out, "argmax": argmax}, {"x": x})
    _pool.maxpool2d_forward(x, out, argmax, pool_size[0], pool_size[1], strides[0], strides[1],
                            top, left, n_threads)
    return out, argmax


def _check_scatter(skipped, argmax, image_size):
    """The backward kernels skip argmax entries outside the image and count them."""
    if skipped:
        raise ValueError(f"Expected argmax values in [0, {image_size}), received values from "
                         f"{argmax.min()} to {argmax.max()}")


def maxpool2d_backward(dy, argmax, input_shape, out=None, relu_output=None, n_threads=None):
    """Scatter dy to the window maxima; with ``relu_output`` (the pooled values of a relu's
    output) also apply that relu's backward, in the same pass."""
    n_threads = effective_n_threads(n_threads)
    input_shape, dy = scatter_backward_args(dy, input_shape)
    argmax = argmax_array(argmax, dy.shape)
    dx = out_buffer(out, input_shape, dy.dtype, "out")
    pooled = None if relu_output is None else as_kernel_array(relu_output, "relu_output", 4,
                                                                 dy.dtype)
    if pooled is not None and pooled.shape != dy.shape:
        raise ValueError(f"Expected relu_output of shape {dy.shape}, received {pooled.shape}")
    check_apart({"out": dx}, {"dy": dy, "argmax": argmax, "relu_output": pooled})
    if pooled is None:
        skipped = _pool.maxpool2d_backward(dy, argmax, dx, n_threads)
    else:
        skipped = _pool.maxpool2d_relu_backward(dy, pooled, argmax, dx, n_threads)
    _check_scatter(skipped, argmax, math.prod(input_shape[1:]))
    return dx


def _window_pool_forward(kernel, x, pool_size, strides, padding, out, n_threads):
    x = check_array(x, "x", 4)
    (oh, ow), (top, left) = window_output_shape(x.shape[1:3], pool_size, strides, padding,
                                                "pool_size")
    x = as_kernel_array(x, "x", 4)
    out = out_buffer(out, (x.shape[0], oh, ow, x.shape[3]), x.dtype, "out")
    check_apart({"out": out}, {"x": x})
    kernel(x, out, pool_size[0], pool_size[1], strides[0], strides[1], top, left, n_threads)
    return out


def _window_pool_backward(kernel, dy, input_shape, pool_size, strides, padding, out, n_threads):
    input_shape = input_shape_arg(input_shape)
    (oh, ow), (top, left) = window_output_shape(input_shape[1:3], pool_size, strides, padding,
                                                "pool_size")
    dy = as_kernel_array(dy, "dy", shape=(input_shape[0], oh, ow, input_shape[3]))
    dx = out_buffer(out, input_shape, dy.dtype, "out")
    check_apart({"out": dx}, {"dy": dy})
    kernel(dy, dx, pool_size[0], pool_size[1], strides[0], strides[1], top, left, n_threads)
    return dx


def avgpool2d_forward(x, pool_size, strides, padding, out=None, n_threads=None):
    return _window_pool_forward(_pool.avgpool2d_forward, x, pool_size, strides, padding, out,
                                effective_n_threads(n_threads))


def avgpool2d_backward(dy, input_shape, pool_size, strides, padding, out=None, n_threads=None):
    return _window_pool_backward(_pool.avgpool2d_backward, dy, input_shape, pool_size, strides,
                                 padding, out, effective_n_threads(n_threads))


def sumpool2d_forward(x, pool_size, strides, padding, out=None, n_threads=None):
    return _window_pool_forward(_pool.sumpool2d_forward, x, pool_size, strides, padding, out,
                                effective_n_threads(n_threads))


def sumpool2d_backward(dy, input_shape, pool_size, strides, padding, out=None, n_threads=None):
    return _window_pool_backward(_pool.sumpool2d_backward, dy, input_shape, pool_size, strides,
                                 padding, out, effective_n_threads(n_threads))


# Global pooling is the windowed kernels with one window covering the whole image.

def global_avgpool2d_forward(x, out=None, n_threads=None):
    """(N, H, W, C) -> (N, C): the mean of each channel over the image."""
    n_threads = effective_n_threads(n_threads)
    x = as_kernel_array(x, "x", 4)
    n, h, w, c = x.shape
    out = out_buffer(out, (n, c), x.dtype, "out")
    avgpool2d_forward(x, (h, w), (h, w), "valid", out=out.reshape(n, 1, 1, c), n_threads=n_threads)
    return out


def global_avgpool2d_backward(dy, input_shape, out=None, n_threads=None):
    n_threads = effective_n_threads(n_threads)
    n, h, w, c = input_shape_arg(input_shape)
    dy = as_kernel_array(dy, "dy", shape=(n, c))
    return avgpool2d_backward(dy.reshape(n, 1, 1, c), input_shape, (h, w), (h, w), "valid", out,
                              n_threads)


def global_maxpool2d_forward(x, out=None, argmax=None, n_threads=None):
    """(N, H, W, C) -> (N, C): the max of each channel over the image, and where it is."""
    n_threads = effective_n_threads(n_threads)
    x = as_kernel_array(x, "x", 4)
    n, h, w, c = x.shape
    out = out_buffer(out, (n, c), x.dtype, "out")
    argmax = out_buffer(argmax, (n, c), np.int32, "argmax")
    maxpool2d_forward(x, (h, w), (h, w), "valid", out=out.reshape(n, 1, 1, c),
                      argmax=argmax.reshape(n, 1, 1, c), n_threads=n_threads)
    return out, argmax


def global_maxpool2d_backward(dy, argmax, input_shape, out=None, n_threads=None):
    n_threads = effective_n_threads(n_threads)
    n, _, _, c = input_shape_arg(input_shape)
    argmax = argmax_array(argmax, (n, c))
    dy = as_kernel_array(dy, "dy", shape=(n, c))
    return maxpool2d_backward(dy.reshape(n, 1, 1, c), argmax.reshape(n, 1, 1, c), input_shape, out,
                              n_threads=n_threads)
