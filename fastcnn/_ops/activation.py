"""Activations, forward beside backward: checked calls of the relu, sigmoid, tanh and softmax
kernels."""
from .._ext import activation as _activation
from .checks import as_kernel_array, check_apart, out_buffer
from .threads import effective_n_threads

ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh", "softmax")
_POINTWISE = {
    "relu": (_activation.relu_forward, _activation.relu_backward),
    "sigmoid": (_activation.sigmoid_forward, _activation.sigmoid_backward),
    "tanh": (_activation.tanh_forward, _activation.tanh_backward),
}


def _check_activation(name, a, a_name):
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise ValueError(f"Unknown activation {name!r}; expected one of {ACTIVATIONS}")
    if name == "softmax" and (a.ndim == 0 or a.shape[-1] == 0):  # the kernel reads entry 0
        raise ValueError(f"Expected {a_name} with at least one entry on its last axis for "
                         f"softmax, received shape {a.shape}")


def activation_forward(name, x, out=None, n_threads=None):
    """Apply the named activation; softmax runs over the last axis. out may be x itself."""
    n_threads = effective_n_threads(n_threads)
    x = as_kernel_array(x, "x")
    _check_activation(name, x, "x")
    out = out_buffer(out, x.shape, x.dtype, "out")
    check_apart({"out": out}, {"x": x}, may_equal={("out", "x")})
    if name == "linear":
        out[...] = x
    elif name == "softmax":
        _activation.softmax_forward(x.reshape(-1, x.shape[-1]), out.reshape(-1, x.shape[-1]),
                                    n_threads)
    else:
        _POINTWISE[name][0](x.reshape(-1), out.reshape(-1), n_threads)
    return out


def activation_backward(name, y, dy, out=None, n_threads=None):
    """Gradient through the named activation, given its output ``y``. out may be y or dy
    itself: each row's kernel reads an element of both before it writes that element."""
    n_threads = effective_n_threads(n_threads)
    y = as_kernel_array(y, "y")
    _check_activation(name, y, "y")
    dy = as_kernel_array(dy, "dy", dtype=y.dtype, shape=y.shape)
    dx = out_buffer(out, y.shape, y.dtype, "out")
    check_apart({"out": dx}, {"y": y, "dy": dy}, may_equal={("out", "y"), ("out", "dy")})
    if name == "linear":
        dx[...] = dy
    elif name == "softmax":
        k = y.shape[-1]
        _activation.softmax_backward(y.reshape(-1, k), dy.reshape(-1, k), dx.reshape(-1, k),
                                     n_threads)
    else:
        _POINTWISE[name][1](y.reshape(-1), dy.reshape(-1), dx.reshape(-1), n_threads)
    return dx
