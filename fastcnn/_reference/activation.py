"""NumPy twins of ``fastcnn._ext.activation``: flat arrays, softmax and log-softmax over the rows
of (N, K), and PReLU on (P, Q, R, S) with slopes (Q, S). They compute in float64, by Keras's
formulas where Keras writes one down."""
import math

import numpy as np

# NumPy has no erf, and fastcnn does not depend on SciPy: the twin takes math.erf element by element.
_erf_objects = np.frompyfunc(math.erf, 1, 1)


def _erf(x):
    return _erf_objects(x).astype(np.float64)



def relu_forward(x, out, n_threads):
    out[...] = np.maximum(x, 0)

def relu_backward(y, dy, dx, n_threads):
    """Gradient through relu, given its output y."""
    dx[...] = np.where(y > 0, dy, 0)

def sigmoid_forward(x, out, n_threads):
    out[...] = 1 / (1 + np.exp(-np.asarray(x, np.float64)))

def sigmoid_backward(y, dy, dx, n_threads):
    dx[...] = dy * y * (1 - y)

def tanh_forward(x, out, n_threads):
    out[...] = np.tanh(x)

def tanh_backward(y, dy, dx, n_threads):
    dx[...] = dy * (1 - y * y)

def general_relu_forward(x, out, negative_slope, max_value, threshold, n_threads):
    x = np.asarray(x, np.float64)
    out[...] = np.where(x > threshold, np.minimum(x, max_value), negative_slope * (x - threshold))

def general_relu_backward(y, dy, dx, negative_slope, max_value, threshold, n_threads):
    dx[...] = np.where(y < 0, negative_slope * dy, np.where((y > 0) & (y < max_value), dy, 0))

def elu_forward(x, out, alpha, scale, n_threads):
    x = np.asarray(x, np.float64)
    out[...] = scale * np.where(x > 0, x, alpha * np.expm1(x))

def elu_backward(y, dy, dx, alpha, scale, n_threads):
    dx[...] = dy * np.where(y > 0, scale, y + scale * alpha)

def gelu_forward(x, out, approximate, n_threads):
    x = np.asarray(x, np.float64)
    if approximate:
        out[...] = 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))
    else:
        out[...] = 0.5 * x * (1 + _erf(x / np.sqrt(2)))

def gelu_backward(x, dy, dx, approximate, n_threads):
    x = np.asarray(x, np.float64)
    if approximate:
        c = np.sqrt(2 / np.pi)
        t = np.tanh(c * (x + 0.044715 * x**3))
        dx[...] = dy * (0.5 * (1 + t) + 0.5 * x * (1 - t**2) * c * (1 + 3 * 0.044715 * x**2))
    else:
        dx[...] = dy * (0.5 * (1 + _erf(x / np.sqrt(2))) + x * np.exp(-x**2 / 2) / np.sqrt(2 * np.pi))

def _sigmoid(x):
    return 1 / (1 + np.exp(-np.asarray(x, np.float64)))

def silu_forward(x, out, n_threads):
    out[...] = x * _sigmoid(x)

def silu_backward(x, dy, dx, n_threads):
    s = _sigmoid(x)
    dx[...] = dy * s * (1 + x * (1 - s))

def softplus_forward(x, out, n_threads):
    out[...] = np.logaddexp(np.asarray(x, np.float64), 0)

def softplus_backward(y, dy, dx, n_threads):
    dx[...] = dy * -np.expm1(-np.asarray(y, np.float64))

def softsign_forward(x, out, n_threads):
    x = np.asarray(x, np.float64)
    out[...] = x / (1 + np.abs(x))

def softsign_backward(y, dy, dx, n_threads):
    dx[...] = dy * (1 - np.abs(np.asarray(y, np.float64)))**2

def hard_sigmoid_forward(x, out, n_threads):
    out[...] = np.clip(np.asarray(x, np.float64) + 3, 0, 6) / 6

def hard_sigmoid_backward(y, dy, dx, n_threads):
    dx[...] = np.where((y > 0) & (y < 1), dy / 6, 0)

def hard_silu_forward(x, out, n_threads):
    x = np.asarray(x, np.float64)
    out[...] = x * (np.clip(x + 3, 0, 6) / 6)

def hard_silu_backward(x, dy, dx, n_threads):
    x = np.asarray(x, np.float64)
    dx[...] = np.where(x <= -3, 0, np.where(x >= 3, dy, dy * (2 * x + 3) / 6))

def mish_forward(x, out, n_threads):
    x = np.asarray(x, np.float64)
    out[...] = x * np.tanh(np.logaddexp(x, 0))

def mish_backward(x, dy, dx, n_threads):
    x = np.asarray(x, np.float64)
    t = np.tanh(np.logaddexp(x, 0))
    dx[...] = dy * (t + x * (1 - t**2) * _sigmoid(x))

def exponential_forward(x, out, n_threads):
    out[...] = np.exp(np.asarray(x, np.float64))

def exponential_backward(y, dy, dx, n_threads):
    dx[...] = dy * np.asarray(y, np.float64)

def softmax_forward(x__nk, out__nk, n_threads):
    z = np.asarray(x__nk, np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    out__nk[...] = e / e.sum(axis=1, keepdims=True)

def softmax_backward(y__nk, dy__nk, dx__nk, n_threads):
    dot = (np.asarray(dy__nk, np.float64) * y__nk).sum(axis=1, keepdims=True)
    dx__nk[...] = y__nk * (dy__nk - dot)

def log_softmax_forward(x__nk, out__nk, n_threads):
    z = np.asarray(x__nk, np.float64)
    top = z.max(axis=1, keepdims=True)
    out__nk[...] = z - top - np.log(np.exp(z - top).sum(axis=1, keepdims=True))

def log_softmax_backward(y__nk, dy__nk, dx__nk, n_threads):
    total = np.asarray(dy__nk, np.float64).sum(axis=1, keepdims=True)
    dx__nk[...] = dy__nk - np.exp(np.asarray(y__nk, np.float64)) * total

def prelu_forward(x__pqrs, alpha__qs, out__pqrs, n_threads):
    alpha = np.asarray(alpha__qs, np.float64)[None, :, None, :]
    out__pqrs[...] = np.where(x__pqrs > 0, x__pqrs, alpha * x__pqrs)

def prelu_backward(x__pqrs, alpha__qs, dy__pqrs, dx__pqrs, dalpha__qs, n_threads):
    dy = np.asarray(dy__pqrs, np.float64)
    if dalpha__qs is not None:
        dalpha__qs[...] = (dy * np.minimum(x__pqrs, 0)).sum(axis=(0, 2))
    if dx__pqrs is not None:
        alpha = np.asarray(alpha__qs, np.float64)[None, :, None, :]
        dx__pqrs[...] = np.where(x__pqrs > 0, dy, alpha * dy)
