"""The sliding-window layers as ONNX nodes on channels-first tensors: the convolutions (Conv1D,
Conv2D, Conv2DTranspose, DepthwiseConv2D, SeparableConv2D) and the poolings.

Weights go from Keras's layouts to ONNX's: HWIO kernels to OIHW, a depthwise kernel
(kh, kw, c, multiplier) to a grouped convolution's (c * multiplier, 1, kh, kw), and a transposed
convolution's (kh, kw, filters, c) to (c, filters, kh, kw). "same" padding is written as the
explicit pads fastcnn computes (TensorFlow's rule: the odd pixel after), unless a size it depends
on is unknown; then ``auto_pad="SAME_UPPER"``, ONNX's name for that same rule.
"""
import numpy as np

from .. import layers
from .._ops.checks import window_output_shape
from .._ops.conv import transpose_output_size
from ..layers.conv import dilated_window
from .activations import layer_activation
from .builder import Value, channels_first


def window_pads(shape, window, strides, padding):
    """ONNX pads (the begins, then the ends) of ``padding`` on the spatial axes of Keras
    ``shape`` (batch, ..., channels) for a window of extent ``window``; None where "same"
    padding depends on a size that is unknown (under a stride above 1)."""
    if padding == "causal":  # Conv1D's: all before, so that output t sees inputs up to t
        return [k - 1 for k in window] + [0] * len(window)
    begins, ends = [], []
    for n, k, s in zip(shape[1:-1], window, strides):
        if n is None:
            if padding == "same" and s > 1:
                return None
            n = k  # under a stride of 1 the padding does not depend on the size
        (_, out), (_, begin) = window_output_shape((1, n), (1, k), (1, s), padding)
        begins.append(begin)
        ends.append(max((out - 1) * s + k - n - begin, 0))
    return begins + ends


def _padding(shape, window, strides, padding):
    pads = window_pads(shape, window, strides, padding)
    return {"auto_pad": "SAME_UPPER"} if pads is None else {"pads": pads}


def _conv(b, x, weight, bias, strides, dilations, padding, group=1, hint="kernel"):
    """A Conv node on ``x`` channels-first, ``weight`` already (out, in / group, *window)."""
    inputs = [b.channels_first(x), b.const(weight, hint)]
    if bias is not None:
        inputs.append(b.const(bias, "bias"))
    window = dilated_window(weight.shape[2:], dilations)
    return b.node("Conv", inputs, kernel_shape=list(weight.shape[2:]), strides=list(strides),
                  dilations=list(dilations), group=group,
                  **_padding(x.shape, window, strides, padding))


def _activated(b, layer, x, z):
    """The layer's activation on its channels-first linear output ``z``."""
    shape = layer.compute_output_shape(x.shape)
    return layer_activation(b, layer, Value(z, channels_first(x.rank), shape))


def conv2d(b, layer, x):
    weight = np.transpose(layer.kernel, (3, 2, 0, 1))
    return _activated(b, layer, x, _conv(b, x, weight, layer.bias, layer.strides,
                                         layer.dilation_rate, layer.padding, layer.groups))


def conv1d(b, layer, x):
    weight = np.transpose(layer.kernel, (2, 1, 0))
    return _activated(b, layer, x, _conv(b, x, weight, layer.bias, layer.strides,
                                         layer.dilation_rate, layer.padding, layer.groups))


def _depthwise_weight(kernel):
    """(kh, kw, c, m) -> (c * m, 1, kh, kw): output channel ch * m + j filters input ch."""
    kh, kw, c, m = kernel.shape
    return np.asarray(kernel).reshape(kh, kw, c * m).transpose(2, 0, 1)[:, None]


def depthwise_conv2d(b, layer, x):
    z = _conv(b, x, _depthwise_weight(layer.kernel), layer.bias, layer.strides,
              layer.dilation_rate, layer.padding, group=x.shape[-1])
    return _activated(b, layer, x, z)


def separable_conv2d(b, layer, x):
    hidden = _conv(b, x, _depthwise_weight(layer.depthwise_kernel), None, layer.strides,
                   layer.dilation_rate, layer.padding, group=x.shape[-1],
                   hint="depthwise_kernel")
    pointwise = np.transpose(layer.pointwise_kernel, (3, 2, 0, 1))
    inputs = [hidden, b.const(pointwise, "pointwise_kernel")]
    if layer.bias is not None:
        inputs.append(b.const(layer.bias, "bias"))
    z = b.node("Conv", inputs, kernel_shape=[1, 1])
    return _activated(b, layer, x, z)


def conv2d_transpose(b, layer, x):
    """ONNX's ConvTranspose crops ``pads`` off the full output ((n - 1) * stride + span) and
    adds ``output_padding`` at the end; fastcnn's output size and its crop before do not depend
    on n, so they are worked out for n = 1."""
    begins, ends, extra = [], [], []
    pads = layer.output_padding or (None, None)
    for k, s, p, d in zip(layer.kernel_size, layer.strides, pads, layer.dilation_rate):
        out, begin = transpose_output_size(1, k, s, layer.padding, p, d)
        end = dilated_window((k,), (d,))[0] - out - begin
        begins.append(begin)
        ends.append(max(end, 0))
        extra.append(max(-end, 0))
    inputs = [b.channels_first(x), b.const(np.transpose(layer.kernel, (3, 2, 0, 1)), "kernel")]
    if layer.bias is not None:
        inputs.append(b.const(layer.bias, "bias"))
    z = b.node("ConvTranspose", inputs, kernel_shape=list(layer.kernel_size),
               strides=list(layer.strides), dilations=list(layer.dilation_rate),
               pads=begins + ends, output_padding=extra)
    return _activated(b, layer, x, z)


def _pool(b, layer, x, op_type, **attributes):
    return b.node(op_type, [b.channels_first(x)], kernel_shape=list(layer.pool_size),
                  strides=list(layer.strides),
                  **_padding(x.shape, layer.pool_size, layer.strides, layer.padding),
                  **attributes), channels_first(x.rank)


def max_pooling2d(b, layer, x):
    """Keras's "same" max pooling ignores the padding, as ONNX's does."""
    return _pool(b, layer, x, "MaxPool")


def average_pooling2d(b, layer, x):
    """Keras's "same" average pooling divides by the cells inside the input."""
    return _pool(b, layer, x, "AveragePool", count_include_pad=0)


def sum_pooling2d(b, layer, x):
    """The mean over the whole window, padding's zeros included, times the window's area."""
    mean, perm = _pool(b, layer, x, "AveragePool", count_include_pad=1)
    area = layer.pool_size[0] * layer.pool_size[1]
    return b.node("Mul", [mean, b.scalar(area)]), perm


def _global_pool(b, layer, x, op_type):
    """A reduction over the two spatial axes, in whatever order x is held."""
    spatial = (1, 2)
    y = b.reduce(op_type, x.name, [x.axis(a) for a in spatial], keepdims=layer.keepdims)
    if layer.keepdims:
        return y, x.perm
    kept = [a for a in x.perm if a not in spatial]
    return y, tuple(sorted(kept).index(a) for a in kept)


def global_average_pooling2d(b, layer, x):
    return _global_pool(b, layer, x, "ReduceMean")


def global_max_pooling2d(b, layer, x):
    return _global_pool(b, layer, x, "ReduceMax")


CONVERTERS = {layers.Conv1D: conv1d, layers.Conv2D: conv2d,
              layers.Conv2DTranspose: conv2d_transpose,
              layers.DepthwiseConv2D: depthwise_conv2d,
              layers.SeparableConv2D: separable_conv2d,
              layers.MaxPooling2D: max_pooling2d, layers.AveragePooling2D: average_pooling2d,
              layers.SumPooling2D: sum_pooling2d,
              layers.GlobalAveragePooling2D: global_average_pooling2d,
              layers.GlobalMaxPooling2D: global_max_pooling2d}
