"""Neural-network ops: activations, convolutions, pooling, normalisation and cross-entropies.

Each runs the kernels the layers use (activation, conv, depthwise, pool, loss), forward and
backward; batch_normalization, moments and the cross-entropies of probabilities are compositions
of the other ops, and so differentiate through them. Images are NHWC (channels_last) with two
spatial axes.
"""
import numbers

import numpy as np

from .._ops import activation as activation_ops
from .._ops import conv as conv_ops
from .._ops import depthwise as depthwise_ops
from .._ops import loss as loss_ops
from .._ops import pool as pool_ops
from ..arguments import axis_index, one_of, short_tuple
from ..config import EPSILON
from .arithmetic import abs as absolute
from .arithmetic import (
    add,
    clip,
    divide,
    log,
    maximum,
    multiply,
    negative,
    sqrt,
    subtract,
)
from .core import Op, Spec, float_dtype, floating, normalize_axis, recordable, spec_of
from .reductions import mean, sum, var
from .shape import cast, expand_dims, reshape


class _Activation(Op):
    def __init__(self, name, **options):
        self.name, self.options = name, options

    def compute(self, x):
        return activation_ops.activation_forward(self.name, floating(x), **self.options)

    def spec(self, x):
        return Spec(x.shape, float_dtype(x.dtype))

    def gradients(self, dy, xs, y, needed):
        saved = floating(xs[0]) if activation_ops.backward_reads_input(self.name) else y
        return [activation_ops.activation_backward(self.name, saved, dy, **self.options)]


@recordable
def relu(x):
    return _Activation("relu")(x)


@recordable
def relu6(x):
    return _Activation("relu6")(x)


@recordable
def sigmoid(x):
    return _Activation("sigmoid")(x)


@recordable
def tanh(x):
    return _Activation("tanh")(x)


@recordable
def softplus(x):
    return _Activation("softplus")(x)


@recordable
def gelu(x, approximate=True):
    return _Activation("gelu", approximate=bool(approximate))(x)


@recordable
def silu(x):
    return _Activation("silu")(x)


swish = silu


@recordable
def leaky_relu(x, negative_slope=0.2):
    return _Activation("leaky_relu", negative_slope=negative_slope)(x)


@recordable
def elu(x, alpha=1.0):
    return _Activation("elu", alpha=alpha)(x)


@recordable
def softmax(x, axis=-1):
    return _Activation("softmax", axis=axis)(x)


@recordable
def log_softmax(x, axis=-1):
    return _Activation("log_softmax", axis=axis)(x)


class _OneHot(Op):
    def __init__(self, num_classes, axis, dtype):
        self.num_classes, self.axis, self.dtype = num_classes, axis, np.dtype(dtype)

    def compute(self, x):
        x = np.asarray(x)
        if x.dtype.kind not in "iu":
            raise TypeError(f"Expected integer class indices, received dtype {x.dtype}")
        out = (x[..., None] == np.arange(self.num_classes)).astype(self.dtype)
        return np.moveaxis(out, -1, self.axis)

    def spec(self, x):
        shape = list(x.shape)
        axis = self.axis if self.axis >= 0 else len(shape) + 1 + self.axis
        shape.insert(axis, self.num_classes)
        return Spec(tuple(shape), self.dtype)


@recordable
def one_hot(x, num_classes, axis=-1, dtype=None, sparse=False):
    """Rows of zeros with a one at each index of ``x``; an index outside [0, num_classes)
    gives a row of zeros, as in Keras."""
    if sparse:
        raise ValueError("Expected sparse=False: fastcnn has dense arrays only")
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) \
            or num_classes < 1:
        raise ValueError(f"Expected num_classes to be a positive int, received "
                         f"num_classes={num_classes!r}")
    return _OneHot(int(num_classes), axis, dtype or "float32")(x)


# -- convolutions and pooling ---------------------------------------------------------------
def _pair(value, name):
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return (int(value), int(value))
    value = short_tuple(value, name)
    if len(value) != 2:
        raise ValueError(f"Expected {name} to be an int or a pair of ints (2-D images), "
                         f"received {name}={value!r}")
    return tuple(int(v) for v in value)


def _check_format(data_format, padding):
    one_of(data_format, (None, "channels_last"), "data_format")
    padding = padding.lower() if isinstance(padding, str) else padding
    return one_of(padding, ("valid", "same"), "padding")


class _Windowed(Op):
    """An op on NHWC images whose output shape its forward decides: the symbolic shape comes
    from running it on one image of zeros (the sizes but the batch must be known)."""

    def spec(self, *specs):
        samples = []
        for s in specs:
            if None in s.shape[1:]:
                raise ValueError(f"{type(self).__name__[1:]} needs the sizes but the batch "
                                 f"known while tracing, received shape {s.shape}")
            samples.append(np.zeros(s.shape if s is not specs[0] else (1, *s.shape[1:]),
                                    float_dtype(s.dtype)))
        out = self.compute(*samples)
        return Spec((specs[0].shape[0], *out.shape[1:]),
                    np.result_type(*(float_dtype(s.dtype) for s in specs)))


class _Conv(_Windowed):
    def __init__(self, strides, padding, dilation_rate):
        self.strides, self.padding, self.dilation = strides, padding, dilation_rate

    def compute(self, x, kernel):
        x, kernel = floating(x), floating(kernel)
        groups = x.shape[-1] // kernel.shape[2] if kernel.shape[2] else 1
        return conv_ops.conv2d_forward(x.astype(kernel.dtype), kernel, None, self.strides,
                                       self.padding, dilation_rate=self.dilation, groups=groups)

    def gradients(self, dy, xs, y, needed):
        x, kernel = floating(xs[0]).astype(dy.dtype), floating(xs[1]).astype(dy.dtype)
        groups = x.shape[-1] // kernel.shape[2]
        args = {"dilation_rate": self.dilation, "groups": groups}
        return [conv_ops.conv2d_backward_input(dy, kernel, x.shape, self.strides, self.padding,
                                               **args) if needed[0] else None,
                conv_ops.conv2d_backward_weight(x, dy, kernel.shape, self.strides, self.padding,
                                                **args) if needed[1] else None]


@recordable
def conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
    """2-D convolution of NHWC ``inputs`` with ``kernel`` (kh, kw, in_channels / groups,
    filters)."""
    padding = _check_format(data_format, padding)
    return _Conv(_pair(strides, "strides"), padding, _pair(dilation_rate, "dilation_rate"))(
        inputs, kernel)


class _DepthwiseConv(_Conv):
    def compute(self, x, kernel):
        kernel = floating(kernel)
        return depthwise_ops.depthwise_forward(floating(x).astype(kernel.dtype), kernel, None,
                                               self.strides, self.padding, self.dilation)

    def gradients(self, dy, xs, y, needed):
        x, kernel = floating(xs[0]).astype(dy.dtype), floating(xs[1]).astype(dy.dtype)
        return [depthwise_ops.depthwise_backward_input(dy, kernel, x.shape, self.strides,
                                                       self.padding, self.dilation)
                if needed[0] else None,
                depthwise_ops.depthwise_backward_weight(x, dy, kernel.shape, self.strides,
                                                        self.padding, self.dilation)
                if needed[1] else None]


@recordable
def depthwise_conv(inputs, kernel, strides=1, padding="valid", data_format=None,
                   dilation_rate=1):
    """Depthwise 2-D convolution of NHWC ``inputs`` with ``kernel`` (kh, kw, channels,
    multiplier)."""
    padding = _check_format(data_format, padding)
    return _DepthwiseConv(_pair(strides, "strides"), padding,
                          _pair(dilation_rate, "dilation_rate"))(inputs, kernel)


class _ConvTranspose(_Conv):
    def __init__(self, strides, padding, output_padding, dilation_rate):
        super().__init__(strides, padding, dilation_rate)
        self.output_padding = output_padding

    def _args(self):
        return {"output_padding": self.output_padding, "dilation_rate": self.dilation}

    def compute(self, x, kernel):
        kernel = floating(kernel)
        return conv_ops.conv2d_transpose_forward(floating(x).astype(kernel.dtype), kernel, None,
                                                 self.strides, self.padding, **self._args())

    def gradients(self, dy, xs, y, needed):
        x, kernel = floating(xs[0]).astype(dy.dtype), floating(xs[1]).astype(dy.dtype)
        return [conv_ops.conv2d_transpose_backward_input(dy, kernel, x.shape, self.strides,
                                                         self.padding, **self._args())
                if needed[0] else None,
                conv_ops.conv2d_transpose_backward_weight(x, dy, kernel.shape, self.strides,
                                                          self.padding, **self._args())
                if needed[1] else None]


@recordable
def conv_transpose(inputs, kernel, strides=1, padding="valid", output_padding=None,
                   data_format=None, dilation_rate=1):
    """Transposed 2-D convolution of NHWC ``inputs`` with ``kernel`` (kh, kw, filters,
    in_channels), Keras's layout."""
    padding = _check_format(data_format, padding)
    if output_padding is not None:
        output_padding = _pair(output_padding, "output_padding")
    return _ConvTranspose(_pair(strides, "strides"), padding, output_padding,
                          _pair(dilation_rate, "dilation_rate"))(inputs, kernel)


class _Pool(_Windowed):
    def __init__(self, kind, pool_size, strides, padding):
        self.kind, self.pool_size, self.strides, self.padding = kind, pool_size, strides, padding

    def compute(self, x):
        x = floating(x)
        if self.kind == "max":
            return pool_ops.maxpool2d_forward(x, self.pool_size, self.strides, self.padding)[0]
        return pool_ops.avgpool2d_forward(x, self.pool_size, self.strides, self.padding)

    def gradients(self, dy, xs, y, needed):
        x = floating(xs[0]).astype(dy.dtype)
        if self.kind == "max":  # the argmax again: the op keeps nothing between calls
            _, argmax = pool_ops.maxpool2d_forward(x, self.pool_size, self.strides, self.padding)
            return [pool_ops.maxpool2d_backward(dy, argmax, x.shape)]
        return [pool_ops.avgpool2d_backward(dy, x.shape, self.pool_size, self.strides,
                                            self.padding)]


def _pool(kind, inputs, pool_size, strides, padding, data_format):
    padding = _check_format(data_format, padding)
    pool_size = _pair(pool_size, "pool_size")
    strides = pool_size if strides is None else _pair(strides, "strides")
    return _Pool(kind, pool_size, strides, padding)(inputs)


@recordable
def max_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
    return _pool("max", inputs, pool_size, strides, padding, data_format)


@recordable
def average_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
    return _pool("average", inputs, pool_size, strides, padding, data_format)


# -- normalisation -------------------------------------------------------------------------
@recordable
def moments(x, axes, keepdims=False, synchronized=False):
    """(mean, variance) over ``axes``."""
    return mean(x, axis=axes, keepdims=keepdims), var(x, axis=axes, keepdims=keepdims)


@recordable
def batch_normalization(x, mean, variance, axis, offset=None, scale=None, epsilon=1e-3):
    """(x - mean) / sqrt(variance + epsilon) * scale + offset, with mean, variance, scale and
    offset of the size of ``x``'s axis ``axis``."""
    ndim = len(spec_of(x).shape)
    (axis,) = normalize_axis(axis, ndim)
    others = tuple(a for a in range(ndim) if a != axis)

    def along(v):
        return v if len(spec_of(v).shape) == ndim else expand_dims(v, others)

    out = divide(subtract(x, along(mean)), sqrt(add(along(variance), epsilon)))
    if scale is not None:
        out = multiply(out, along(scale))
    if offset is not None:
        out = add(out, along(offset))
    return out


# -- cross-entropies -----------------------------------------------------------------------
class _SoftmaxCrossEntropy(Op):
    """Cross-entropy of logits over the last axis against one-hot (or soft) targets, or
    integer labels (``sparse``): the loss kernels, whose forward gives each row's gradient too
    (run again in backward: the op keeps nothing between calls)."""

    def __init__(self, sparse):
        self.sparse = sparse

    def _run(self, target, logits, scale=1.0):
        logits = floating(logits)
        rows = logits.reshape(-1, logits.shape[-1])
        if self.sparse:
            labels = np.asarray(target).reshape(-1)
            return loss_ops.sparse_softmax_cross_entropy(rows, labels, scale)
        return loss_ops.softmax_cross_entropy(rows, np.asarray(target, logits.dtype).reshape(
            rows.shape), scale)

    def compute(self, target, logits):
        loss, _ = self._run(target, logits)
        return loss.reshape(np.shape(logits)[:-1])

    def spec(self, target, logits):
        return Spec(logits.shape[:-1], float_dtype(logits.dtype))

    def gradients(self, dy, xs, y, needed):
        _, grad = self._run(*xs)
        return [None, grad.reshape(np.shape(xs[1])) * dy[..., None]]

    def forward_backward(self, xs, dy, needed):
        """One kernel call; an upstream gradient of one number for every row (a broadcast
        view, as a loss's mean gives) scales the gradient in the kernel, as the built-in loss
        does."""
        shape = np.shape(xs[1])
        if dy.size and not any(dy.strides):
            loss, grad = self._run(*xs, scale=float(dy.flat[0]))
            return loss.reshape(shape[:-1]), [None, grad.reshape(shape)]
        loss, grad = self._run(*xs)
        return loss.reshape(shape[:-1]), [None, grad.reshape(shape) * dy[..., None]]


@recordable
def categorical_crossentropy(target, output, from_logits=False, axis=-1):
    """Each position's cross-entropy over ``axis``: of the softmax of logits, or of
    probabilities normalised to sum to one and clipped to [1e-7, 1 - 1e-7] as Keras does."""
    axis = axis_index(axis)
    ndim = len(spec_of(output).shape)
    if from_logits and axis % ndim == ndim - 1:
        return _SoftmaxCrossEntropy(False)(target, output)
    if from_logits:
        return negative(sum(multiply(target, log_softmax(output, axis=axis)), axis=axis))
    probs = divide(output, sum(output, axis=axis, keepdims=True))
    return negative(sum(multiply(target, log(clip(probs, EPSILON, 1 - EPSILON))), axis=axis))


@recordable
def sparse_categorical_crossentropy(target, output, from_logits=False, axis=-1):
    """categorical_crossentropy with integer labels (of the output's shape without ``axis``,
    or with a trailing axis of 1)."""
    axis = axis_index(axis)
    out_shape, target_shape = spec_of(output).shape, spec_of(target).shape
    if len(target_shape) == len(out_shape) and target_shape[-1] == 1:
        target = reshape(target, target_shape[:-1])
    if axis % len(out_shape) != len(out_shape) - 1:
        raise ValueError(f"Expected axis=-1 for sparse_categorical_crossentropy, received "
                         f"axis={axis!r}")
    if from_logits:
        return _SoftmaxCrossEntropy(True)(target, output)
    labels = one_hot(target, out_shape[-1], dtype=float_dtype(spec_of(output).dtype))
    return categorical_crossentropy(labels, output, False, axis)


@recordable
def binary_crossentropy(target, output, from_logits=False):
    """Elementwise binary cross-entropy: of sigmoid(logits) in a form that cannot overflow,
    or of probabilities clipped to [1e-7, 1 - 1e-7], as Keras computes it."""
    output_dtype = float_dtype(spec_of(output).dtype)
    target = cast(target, output_dtype)
    if from_logits:
        # max(x, 0) - x * z + log(1 + exp(-|x|))
        return add(subtract(maximum(output, 0.0), multiply(output, target)),
                   softplus(negative(absolute(output))))
    p = clip(output, EPSILON, 1 - EPSILON)
    return negative(add(multiply(target, log(p)),
                        multiply(subtract(1.0, target), log(subtract(1.0, p)))))

