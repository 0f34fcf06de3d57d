"""NumPy twins of ``fastcnn._ext.loss``: per-row loss, gradient scaled by grad_scale."""
import numpy as np


def _log_softmax(logits):
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))

def softmax_cross_entropy(logits__nk, target__nk, grad__nk, loss__n, grad_scale, n_threads):
    """loss_i = -sum_k t_ik log softmax(z_i)_k;
    grad = grad_scale * (softmax(z) * sum_k t_ik - t)."""
    logp = _log_softmax(logits__nk)
    t = np.asarray(target__nk, np.float64)
    loss__n[...] = -(t * logp).sum(axis=1)
    grad__nk[...] = grad_scale * (np.exp(logp) * t.sum(axis=1, keepdims=True) - t)

def sparse_softmax_cross_entropy(logits__nk, labels__n, grad__nk, loss__n, grad_scale, n_threads):
    logp = _log_softmax(logits__nk)
    rows = np.arange(len(labels__n))
    loss__n[...] = -logp[rows, labels__n]
    g = np.exp(logp)
    g[rows, labels__n] -= 1
    grad__nk[...] = grad_scale * g

def mean_squared_error(y_pred__nk, target__nk, grad__nk, loss__n, grad_scale, n_threads):
    d = np.asarray(y_pred__nk, np.float64) - target__nk
    loss__n[...] = (d * d).mean(axis=1)
    grad__nk[...] = grad_scale * 2 * d / d.shape[1]

def binary_crossentropy(y_pred__nk, target__nk, grad__nk, loss__n, grad_scale, n_threads):
    """Probabilities clipped to [1e-7, 1 - 1e-7] in their own precision; no gradient where
    clipped."""
    dtype = y_pred__nk.dtype.type
    low, high = dtype(1e-7), dtype(1 - 1e-7)
    p = np.clip(np.asarray(y_pred__nk, np.float64), low, high)
    t = np.asarray(target__nk, np.float64)
    loss__n[...] = -(t * np.log(p) + (1 - t) * np.log(1 - p)).mean(axis=1)
    inside = (y_pred__nk >= low) & (y_pred__nk <= high)
    grad__nk[...] = np.where(inside, grad_scale * (p - t) / (p * (1 - p)) / p.shape[1], 0)

def sigmoid_binary_crossentropy(logits__nk, target__nk, grad__nk, loss__n, grad_scale, n_threads):
    z = np.asarray(logits__nk, np.float64)
    t = np.asarray(target__nk, np.float64)
    e = np.exp(-np.abs(z))
    loss__n[...] = (np.maximum(z, 0) - z * t + np.log1p(e)).mean(axis=1)
    grad__nk[...] = grad_scale * (np.where(z >= 0, 1, e) / (1 + e) - t) / z.shape[1]

def categorical_hinge(y_pred__nk, target__nk, grad__nk, loss__n, grad_scale, n_threads):
    p = np.asarray(y_pred__nk, np.float64)
    t = np.asarray(target__nk, np.float64)
    pos = (t * p).sum(axis=1)
    others = (1 - t) * p
    top = others.argmax(axis=1)  # the first maximum
    margin = others.max(axis=1) - pos + 1
    loss__n[...] = np.maximum(margin, 0)
    g = -t
    rows = np.arange(len(p))
    g[rows, top] += 1 - t[rows, top]
    grad__nk[...] = grad_scale * np.where(margin[:, None] > 0, g, 0)

def multiclass_hinge(scores__nk, labels__n, grad__nk, loss__n, grad_scale, n_threads):
    s = np.asarray(scores__nk, np.float64)
    rows = np.arange(len(s))
    margins = s - s[rows, labels__n][:, None] + 1
    margins[rows, labels__n] = 0
    violated = margins > 0
    loss__n[...] = np.where(violated, margins, 0).sum(axis=1)
    g = violated.astype(np.float64)
    g[rows, labels__n] = -violated.sum(axis=1)
    grad__nk[...] = grad_scale * g
