"""NumPy twins of ``fastcnn._ext.activation``: flat arrays, and softmax over the rows of (N, K)."""
import numpy as np


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

def softmax_forward(x__nk, out__nk, n_threads):
    z = np.asarray(x__nk, np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    out__nk[...] = e / e.sum(axis=1, keepdims=True)

def softmax_backward(y__nk, dy__nk, dx__nk, n_threads):
    dot = (np.asarray(dy__nk, np.float64) * y__nk).sum(axis=1, keepdims=True)
    dx__nk[...] = y__nk * (dy__nk - dot)
