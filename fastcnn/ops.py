"""The ops facade: validates arrays, picks the kernel's dtype, owns output buffers.

Every function here has a kernel in ``fastcnn._ext`` and a twin in ``fastcnn._reference``. The
API layers call only these functions. Arrays reaching a kernel are C-contiguous and share one
floating dtype; anything else is copied once here, never silently reinterpreted.
"""
import numpy as np

from ._ext import conv as _conv
from ._ext import dense as _dense
from ._ext import elementwise as _elementwise
from ._ext import loss as _loss
from ._ext import optim as _optim
from ._ext import pool as _pool
from .config import get_num_threads

FLOATS = (np.float32, np.float64)
INDEX_LIMIT = 2**31 - 1  # kernels index one image, and the argmax, with 32-bit ints


class Workspace:
    """Buffers reused across batches, allocated once for the largest batch seen.

    ``get`` hands out a leading-axis view, which stays C-contiguous, so a smaller final batch
    costs no allocation.
    """

    def __init__(self):
        self._buffers = {}

    def get(self, name, shape, dtype=np.float32, zero=False):
        buf = self._buffers.get(name)
        if buf is None or buf.dtype != dtype or buf.shape[1:] != tuple(shape[1:]) or buf.shape[0] < shape[0]:
            buf = np.zeros(shape, dtype) if zero else np.empty(shape, dtype)
            self._buffers[name] = buf
        return buf[: shape[0]]

    def clear(self):
        self._buffers.clear()


def as_kernel_array(a, name, ndim=None, dtype=None):
    """``a`` as a C-contiguous float array of rank ``ndim`` (copying only when needed)."""
    a = np.asarray(a)
    if ndim is not None and a.ndim != ndim:
        raise ValueError(f"Expected {name} of rank {ndim}, received shape {a.shape}")
    if dtype is None:
        dtype = a.dtype if a.dtype in FLOATS else np.float32
    if a.dtype.kind not in "fiub":
        raise TypeError(f"Expected {name} to hold real numbers, received dtype {a.dtype}")
    return np.ascontiguousarray(a, dtype=dtype)


def _out(out, shape, dtype, name):
    if out is None:
        return np.empty(shape, dtype)
    if out.shape != tuple(shape) or out.dtype != dtype or not out.flags.c_contiguous:
        raise ValueError(f"Expected {name} of shape {tuple(shape)} and dtype {np.dtype(dtype)}, "
                         f"C-contiguous; received {out.shape} {out.dtype}")
    return out


def _check_image_size(shape, name):
    if int(np.prod(shape[1:], dtype=np.int64)) > INDEX_LIMIT:
        raise ValueError(f"{name} of shape {shape} has more than {INDEX_LIMIT} values per sample, "
                         "beyond the kernels' 32-bit indices")


def window_geometry(size, window, stride, padding):
    """(output size, padding before) on one axis, with TensorFlow's rule for "same"."""
    if padding == "valid":
        return (size - window) // stride + 1, 0
    out = -(-size // stride)
    total = max((out - 1) * stride + window - size, 0)
    return out, total // 2


def window_output_shape(input_hw, window, strides, padding):
    (oh, top), (ow, left) = (window_geometry(n, k, s, padding)
                             for n, k, s in zip(input_hw, window, strides))
    return (oh, ow), (top, left)


# ---- convolution -----------------------------------------------------------------------------

def conv2d_forward(x, kernel, bias, strides, padding, relu=False, out=None):
    """NHWC x, HWIO kernel -> NHWC out, with bias and relu fused when given."""
    x = as_kernel_array(x, "x", 4, kernel.dtype)
    if x.shape[3] != kernel.shape[2]:
        raise ValueError(f"Expected x with {kernel.shape[2]} channels, received shape {x.shape}")
    (oh, ow), (top, left) = window_output_shape(x.shape[1:3], kernel.shape[:2], strides, padding)
    shape = (x.shape[0], oh, ow, kernel.shape[3])
    _check_image_size(x.shape, "x")
    _check_image_size(shape, "conv output")
    out = _out(out, shape, kernel.dtype, "out")
    _conv.conv2d_forward(x, kernel, bias, out, strides[0], strides[1], top, left, relu,
                         get_num_threads())
    return out


def conv2d_backward_input(dy, kernel, input_shape, strides, padding, out=None):
    (_, _), (top, left) = window_output_shape(input_shape[1:3], kernel.shape[:2], strides, padding)
    dx = _out(out, input_shape, kernel.dtype, "dx")
    _conv.conv2d_backward_input(as_kernel_array(dy, "dy", 4, kernel.dtype), kernel, dx,
                                strides[0], strides[1], top, left, get_num_threads())
    return dx


def conv2d_backward_weight(x, dy, kernel_shape, strides, padding, dw=None, db=None):
    (_, _), (top, left) = window_output_shape(x.shape[1:3], kernel_shape[:2], strides, padding)
    dw = _out(dw, kernel_shape, x.dtype, "dw")
    _conv.conv2d_backward_weight(x, as_kernel_array(dy, "dy", 4, x.dtype), dw, db,
                                 strides[0], strides[1], top, left, get_num_threads())
    return dw


# ---- dense -----------------------------------------------------------------------------------

def dense_forward(x, kernel, bias, relu=False, out=None):
    x = as_kernel_array(x, "x", 2, kernel.dtype)
    if x.shape[1] != kernel.shape[0]:
        raise ValueError(f"Expected x with {kernel.shape[0]} features, received shape {x.shape}")
    out = _out(out, (x.shape[0], kernel.shape[1]), kernel.dtype, "out")
    _dense.dense_forward(x, kernel, bias, out, relu, get_num_threads())
    return out


def dense_backward_input(dy, kernel, out=None):
    dx = _out(out, (dy.shape[0], kernel.shape[0]), kernel.dtype, "dx")
    _dense.dense_backward_input(as_kernel_array(dy, "dy", 2, kernel.dtype), kernel, dx,
                                get_num_threads())
    return dx


def dense_backward_weight(x, dy, dw=None, db=None):
    dw = _out(dw, (x.shape[1], dy.shape[1]), x.dtype, "dw")
    _dense.dense_backward_weight(x, as_kernel_array(dy, "dy", 2, x.dtype), dw, db,
                                 get_num_threads())
    return dw


# ---- pooling ---------------------------------------------------------------------------------

def maxpool2d_forward(x, pool_size, strides, padding, out=None, argmax=None):
    x = as_kernel_array(x, "x", 4)
    _check_image_size(x.shape, "x")
    (oh, ow), (top, left) = window_output_shape(x.shape[1:3], pool_size, strides, padding)
    shape = (x.shape[0], oh, ow, x.shape[3])
    out = _out(out, shape, x.dtype, "out")
    argmax = _out(argmax, shape, np.int32, "argmax")
    _pool.maxpool2d_forward(x, out, argmax, pool_size[0], pool_size[1], strides[0], strides[1],
                            top, left, get_num_threads())
    return out, argmax


def maxpool2d_backward(dy, argmax, input_shape, out=None):
    dy = as_kernel_array(dy, "dy", 4)
    dx = _out(out, input_shape, dy.dtype, "dx")
    _pool.maxpool2d_backward(dy, argmax, dx, get_num_threads())
    return dx


def avgpool2d_forward(x, pool_size, strides, padding, out=None):
    x = as_kernel_array(x, "x", 4)
    (oh, ow), (top, left) = window_output_shape(x.shape[1:3], pool_size, strides, padding)
    out = _out(out, (x.shape[0], oh, ow, x.shape[3]), x.dtype, "out")
    _pool.avgpool2d_forward(x, out, pool_size[0], pool_size[1], strides[0], strides[1], top, left,
                            get_num_threads())
    return out


def avgpool2d_backward(dy, input_shape, pool_size, strides, padding, out=None):
    dy = as_kernel_array(dy, "dy", 4)
    (_, _), (top, left) = window_output_shape(input_shape[1:3], pool_size, strides, padding)
    dx = _out(out, input_shape, dy.dtype, "dx")
    _pool.avgpool2d_backward(dy, dx, pool_size[0], pool_size[1], strides[0], strides[1], top, left,
                             get_num_threads())
    return dx


# ---- activations -----------------------------------------------------------------------------

ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh", "softmax")
_POINTWISE = {
    "relu": (_elementwise.relu_forward, _elementwise.relu_backward),
    "sigmoid": (_elementwise.sigmoid_forward, _elementwise.sigmoid_backward),
    "tanh": (_elementwise.tanh_forward, _elementwise.tanh_backward),
}


def activation_forward(name, x, out=None):
    """Apply the named activation; softmax runs over the last axis."""
    x = as_kernel_array(x, "x")
    out = _out(out, x.shape, x.dtype, "out")
    if name == "linear":
        out[...] = x
    elif name == "softmax":
        _elementwise.softmax_forward(x.reshape(-1, x.shape[-1]), out.reshape(-1, x.shape[-1]),
                                     get_num_threads())
    else:
        _POINTWISE[name][0](x.reshape(-1), out.reshape(-1), get_num_threads())
    return out


def activation_backward(name, y, dy, out=None):
    """Gradient through the named activation, given its output ``y``."""
    dy = as_kernel_array(dy, "dy", y.ndim, y.dtype)
    dx = _out(out, y.shape, y.dtype, "dx")
    if name == "linear":
        dx[...] = dy
    elif name == "softmax":
        k = y.shape[-1]
        _elementwise.softmax_backward(y.reshape(-1, k), dy.reshape(-1, k), dx.reshape(-1, k),
                                      get_num_threads())
    else:
        _POINTWISE[name][1](y.reshape(-1), dy.reshape(-1), dx.reshape(-1), get_num_threads())
    return dx


def dropout_forward(x, uniform, rate, out=None):
    out = _out(out, x.shape, x.dtype, "out")
    _elementwise.dropout_forward(x.reshape(-1), uniform.reshape(-1), rate, out.reshape(-1),
                                 get_num_threads())
    return out


def dropout_backward(dy, uniform, rate, out=None):
    dx = _out(out, dy.shape, dy.dtype, "dx")
    _elementwise.dropout_backward(dy.reshape(-1), uniform.reshape(-1), rate, dx.reshape(-1),
                                  get_num_threads())
    return dx


# ---- fused softmax + cross-entropy -----------------------------------------------------------

def softmax_cross_entropy(logits, target, grad_scale, grad=None, loss=None):
    """Per-row losses and the scaled gradient wrt the logits; target is one-hot (N, K)."""
    target = as_kernel_array(target, "y", 2, logits.dtype)
    grad = _out(grad, logits.shape, logits.dtype, "grad")
    loss = _out(loss, logits.shape[:1], logits.dtype, "loss")
    _loss.softmax_cross_entropy(logits, target, grad, loss, grad_scale, get_num_threads())
    return loss, grad


def sparse_softmax_cross_entropy(logits, labels, grad_scale, grad=None, loss=None):
    """As softmax_cross_entropy, with integer labels in [0, K)."""
    labels = np.ascontiguousarray(labels, dtype=np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= logits.shape[1]):
        raise ValueError(f"Expected labels in [0, {logits.shape[1]}), received values from "
                         f"{labels.min()} to {labels.max()}")
    grad = _out(grad, logits.shape, logits.dtype, "grad")
    loss = _out(loss, logits.shape[:1], logits.dtype, "loss")
    _loss.sparse_softmax_cross_entropy(logits, labels, grad, loss, grad_scale, get_num_threads())
    return loss, grad


# ---- optimizer updates -----------------------------------------------------------------------

def sgd_update(param, grad, velocity, learning_rate, momentum, nesterov):
    _optim.sgd_update(param.reshape(-1), grad.reshape(-1), velocity.reshape(-1), learning_rate,
                      momentum, nesterov, get_num_threads())


def adam_update(param, grad, m, v, learning_rate, beta_1, beta_2, epsilon, step):
    _optim.adam_update(param.reshape(-1), grad.reshape(-1), m.reshape(-1), v.reshape(-1),
                       learning_rate, beta_1, beta_2, epsilon, step, get_num_threads())
