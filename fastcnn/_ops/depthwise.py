"""Depthwise convolution: checked calls of ``_ext.depthwise``. Weights are ``(kh, kw, c, dm)``;
the output has ``c * dm`` channels, channel ``ch * dm + m`` from input channel ``ch``."""
import math

import numpy as np

from .._ext import depthwise as _depthwise
from .checks import (_check_pair, as_kernel_array, bias_array, check_apart, check_array,
                     check_index_range, check_weight_shape, epilogue_activation, memoized,
                     out_buffer, shape_arg, weights_array, window_output_shape)
from .normalization import batchnorm_chunk_rows, batchnorm_partial_shape
from .threads import effective_n_threads

# dW's partial sums: at most this many chunks of output rows (enough for 16 threads to share),
# and at most PARTIAL_VALUES values in all. Fixed, so that the sums ignore the thread count.
MAX_CHUNKS = 64
PARTIAL_VALUES = 1 << 20


@memoized
def _geometry(x_shape, kernel_shape, strides, padding, dilation_rate, x_name="x"):
    """(output shape, pad_top, pad_left): a window of the dilated kernel's extent
    (k - 1) * rate + 1 slides as any window does."""
    if x_shape[3] != kernel_shape[2]:
        raise ValueError(f"Expected {x_name} with {kernel_shape[2]} channels to match the kernel "
                         f"of shape {tuple(kernel_shape)}, received shape {tuple(x_shape)}")
    _check_pair(dilation_rate, "dilation_rate")
    rates = tuple(int(r) for r in dilation_rate)
    extent = tuple((k - 1) * r + 1 for k, r in zip(kernel_shape[:2], rates))
    (oh, ow), (top, left) = window_output_shape(x_shape[1:3], extent, strides, padding,
                                                "kernel_size")
    shape = (x_shape[0], oh, ow, kernel_shape[2] * kernel_shape[3])
    check_index_range(x_shape, x_name)
    check_index_range(shape, "depthwise output")
    return shape, (*strides, *rates, top, left)


def depthwise_forward(x, kernel, bias, strides, padding, dilation_rate=(1, 1), relu=False,
                      out=None, n_threads=None, relu6=False, moments=None):
    """NHWC x, (kh, kw, c, dm) kernel -> NHWC out with c * dm channels, bias and relu (or with
    ``relu6``, relu capped at 6) fused when given.

    ``moments``: as conv.conv2d_forward's, a float64 array of
    ``normalization.batchnorm_partial_shape(out.shape)`` that receives the partial sums of the
    batch normalisation of out, for ``batchnorm_forward_training``'s ``moments_given``."""
    n_threads = effective_n_threads(n_threads)
    kernel = weights_array(kernel, "kernel", 4)
    shape, geometry = _geometry(check_array(x, "x", 4).shape, kernel.shape, strides, padding,
                                dilation_rate)
    x = as_kernel_array(x, "x", 4, kernel.dtype)
    bias = bias_array(bias, shape[3], kernel.dtype)
    relu = epilogue_activation(relu, relu6)
    out = out_buffer(out, shape, kernel.dtype, "out")
    if moments is not None:
        moments = out_buffer(moments, batchnorm_partial_shape(shape), np.float64, "moments")
    check_apart({"out": out, "moments": moments}, {"x": x, "kernel": kernel, "bias": bias})
    _depthwise.depthwise_forward(x, kernel, bias, out, *geometry, relu, n_threads, moments,
                                 batchnorm_chunk_rows(shape) if moments is not None else 1)
    return out


def depthwise_backward_input(dy, kernel, input_shape, strides, padding, dilation_rate=(1, 1),
                             out=None, n_threads=None):
    """The gradient of depthwise_forward's x, for an x of ``input_shape``."""
    n_threads = effective_n_threads(n_threads)
    kernel = weights_array(kernel, "kernel", 4)
    input_shape = shape_arg(input_shape, "input_shape", 4)
    shape, geometry = _geometry(input_shape, kernel.shape, strides, padding, dilation_rate,
                                "input_shape")
    dy = as_kernel_array(dy, "dy", dtype=kernel.dtype, shape=shape)
    dx = out_buffer(out, input_shape, kernel.dtype, "out")
    check_apart({"out": dx}, {"dy": dy, "kernel": kernel})
    _depthwise.depthwise_backward_input(dy, kernel, dx, *geometry, n_threads)
    return dx


def depthwise_partial_shape(output_shape, kernel_shape):
    """The shape of depthwise_backward_weight's ``partial`` scratch, for an output (dy) of
    ``output_shape`` and a kernel of ``kernel_shape``: one row of dW and db sums per chunk of
    output rows. A layer that calls it every batch allocates it once from this."""
    values = math.prod(kernel_shape) + kernel_shape[2] * kernel_shape[3]
    rows = output_shape[0] * output_shape[1]
    return max(1, min(rows, MAX_CHUNKS, PARTIAL_VALUES // values)), values


def depthwise_backward_weight(x, dy, kernel_shape, strides, padding, dilation_rate=(1, 1),
                              dw=None, db=None, partial=None, n_threads=None):
    """The gradient of depthwise_forward's kernel (returned) and, when ``db`` is given, of its
    bias, written into db. ``partial``: scratch of depthwise_partial_shape."""
    n_threads = effective_n_threads(n_threads)
    kernel_shape = shape_arg(kernel_shape, "kernel_shape", 4)
    check_weight_shape(kernel_shape, "kernel_shape")
    shape, geometry = _geometry(check_array(x, "x", 4).shape, kernel_shape, strides, padding,
                                dilation_rate)
    x = as_kernel_array(x, "x", 4)
    dy = as_kernel_array(dy, "dy", dtype=x.dtype, shape=shape)
    dw = out_buffer(dw, kernel_shape, x.dtype, "dw")
    db = None if db is None else out_buffer(db, shape[3:], x.dtype, "db")
    partial = out_buffer(partial, depthwise_partial_shape(shape, kernel_shape), x.dtype,
                         "partial")
    check_apart({"dw": dw, "db": db, "partial": partial}, {"x": x, "dy": dy})
    _depthwise.depthwise_backward_weight(x, dy, dw, db, partial, *geometry, n_threads)
    return dw
