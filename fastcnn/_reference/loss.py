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

def mean_absolute_error(y_pred__nk, target__nk, grad__nk, loss__n, grad_scale, n_threads):
    d = np.asarray(y_pred__nk, np.float64) - target__nk
    loss__n[...] = np.abs(d).mean(axis=1)
    grad__nk[...] = grad_scale * np.sign(d) / d.shape[1]

def huber(y_pred__nk, target__nk, grad__nk, loss__n, delta, grad_scale, n_threads):
    d = np.asarray(y_pred__nk, np.float64) - target__nk
    near = np.abs(d) <= delta
    loss__n[...] = np.where(near, d * d / 2, delta * np.abs(d) - delta * delta / 2).mean(axis=1)
    grad__nk[...] = grad_scale * np.where(near, d, delta * np.sign(d)) / d.shape[1]

def log_cosh(y_pred__nk, target__nk, grad__nk, loss__n, grad_scale, n_threads):
    d = np.asarray(y_pred__nk, np.float64) - target__nk
    loss__n[...] = (np.logaddexp(d, -d) - np.log(2)).mean(axis=1)
    grad__nk[...] = grad_scale * np.tanh(d) / d.shape[1]

def kl_divergence(y_pred__nk, target__nk, grad__nk, loss__n, grad_scale, n_threads):
    low = y_pred__nk.dtype.type(1e-7)
    p = np.clip(np.asarray(y_pred__nk, np.float64), low, 1)
    t = np.clip(np.asarray(target__nk, np.float64), low, 1)
    loss__n[...] = (t * np.log(t / p)).sum(axis=1)
    inside = (y_pred__nk >= low) & (y_pred__nk <= 1)
    grad__nk[...] = np.where(inside, -grad_scale * t / p, 0)

def poisson(y_pred__nk, target__nk, grad__nk, loss__n, grad_scale, n_threads):
    p = np.asarray(y_pred__nk, np.float64) + y_pred__nk.dtype.type(1e-7)
    t = np.asarray(target__nk, np.float64)
    loss__n[...] = (y_pred__nk - t * np.log(p)).mean(axis=1)
    grad__nk[...] = grad_scale * (1 - t / p) / p.shape[1]

def _clipped(p, dtype):
    """p clipped to Keras's [1e-7, 1 - 1e-7] (the bounds in the working precision ``dtype``),
    and where it was inside."""
    low, high = dtype.type(1e-7), dtype.type(1 - 1e-7)
    return np.clip(p, low, high), (p >= low) & (p <= high)

def categorical_focal_crossentropy(y_pred__nk, target__nk, alpha__k, grad__nk, loss__n, gamma,
                                   from_logits, grad_scale, n_threads):
    y = np.asarray(y_pred__nk, np.float64)
    p = np.exp(_log_softmax(y)) if from_logits else y
    s = p.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):  # a row of zeros gives NaN, as in Keras
        o, inside = _clipped(p / s, y_pred__nk.dtype)
    t, alpha = np.asarray(target__nk, np.float64), np.asarray(alpha__k, np.float64)
    loss__n[...] = (alpha * (1 - o) ** gamma * -t * np.log(o)).sum(axis=1)
    g = alpha * t * (gamma * (1 - o) ** (gamma - 1) * np.log(o) - (1 - o) ** gamma / o)
    g = np.where(inside, g, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        dp = (g - (g * p / s).sum(axis=1, keepdims=True)) / s
    grad__nk[...] = grad_scale * (p * dp if from_logits else dp)

def binary_focal_crossentropy(y_pred__nk, target__nk, grad__nk, loss__n, alpha, gamma,
                              apply_class_balancing, from_logits, grad_scale, n_threads):
    y = np.asarray(y_pred__nk, np.float64)
    p = 1 / (1 + np.exp(-y)) if from_logits else y
    t = np.asarray(target__nk, np.float64)
    c, inside = _clipped(p, y_pred__nk.dtype)
    bce = -(t * np.log(c) + (1 - t) * np.log(1 - c))
    u = 1 - (t * p + (1 - t) * (1 - p))
    with np.errstate(divide="ignore", invalid="ignore"):
        dfocal = np.where((u > 0) | (gamma >= 1), -(2 * t - 1) * gamma * u ** (gamma - 1), 0)
    w = t * alpha + (1 - t) * (1 - alpha) if apply_class_balancing else 1
    loss__n[...] = (w * u ** gamma * bce).mean(axis=1)
    g = w * (dfocal * bce + u ** gamma * np.where(inside, (c - t) / (c * (1 - c)), 0))
    grad__nk[...] = grad_scale * (g * p * (1 - p) if from_logits else g) / y.shape[1]

def dice(y_pred__gm, target__gm, grad__gm, loss__g, grad_scale, n_threads):
    p = np.asarray(y_pred__gm, np.float64)
    t = np.asarray(target__gm, np.float64)
    inter = (t * p).sum(axis=1, keepdims=True)
    denom = t.sum(axis=1, keepdims=True) + p.sum(axis=1, keepdims=True) + y_pred__gm.dtype.type(1e-7)
    loss__g[...] = 1 - 2 * inter[:, 0] / denom[:, 0]
    grad__gm[...] = grad_scale * 2 * (inter / denom - t) / denom
