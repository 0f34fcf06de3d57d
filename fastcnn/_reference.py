"""NumPy twins of every kernel in ``fastcnn._ext``: slow, obvious, used by the tests.

Each function has exactly the signature of its kernel: it reads the ``# IN`` arrays and writes
the ``# OUT`` arrays in place. ``n_threads`` is accepted and ignored. Layouts: activations NHWC,
conv weights HWIO ``(kh, kw, c_in, c_out)``, dense weights ``(in, out)``.

Padding is given as ``pad_top``/``pad_left``; the output's shape fixes the rest. Cells that the
window reaches past the input on the bottom/right count as zeros (conv) or are ignored (pooling).
"""
import numpy as np


def _canvas(x, out_h, out_w, kh, kw, sh, sw, pad_top, pad_left, fill=0.0):
    """x placed at (pad_top, pad_left) on a canvas that every output window fits in."""
    n, h, w, c = x.shape
    hp = max((out_h - 1) * sh + kh, pad_top + h)
    wp = max((out_w - 1) * sw + kw, pad_left + w)
    canvas = np.full((n, hp, wp, c), fill, dtype=np.float64)
    canvas[:, pad_top:pad_top + h, pad_left:pad_left + w] = x
    return canvas


def _windows(canvas, i, j, out_h, out_w, sh, sw):
    """The (N, OH, OW, C) slab seen by kernel tap (i, j)."""
    return canvas[:, i:i + (out_h - 1) * sh + 1:sh, j:j + (out_w - 1) * sw + 1:sw]


# ---- convolution -----------------------------------------------------------------------------

def conv2d_forward(x__nhwc, w__hwio, bias, out__nhwc, stride_h, stride_w, pad_top, pad_left,
                   relu, n_threads):
    kh, kw = w__hwio.shape[:2]
    oh, ow = out__nhwc.shape[1:3]
    xp = _canvas(x__nhwc, oh, ow, kh, kw, stride_h, stride_w, pad_top, pad_left)
    acc = np.zeros(out__nhwc.shape)
    for i in range(kh):
        for j in range(kw):
            acc += _windows(xp, i, j, oh, ow, stride_h, stride_w) @ w__hwio[i, j].astype(np.float64)
    if bias is not None:
        acc += bias
    if relu:
        np.maximum(acc, 0, out=acc)
    out__nhwc[...] = acc


def conv2d_backward_input(dy__nhwc, w__hwio, dx__nhwc, stride_h, stride_w, pad_top, pad_left,
                          n_threads):
    kh, kw = w__hwio.shape[:2]
    oh, ow = dy__nhwc.shape[1:3]
    h, w = dx__nhwc.shape[1:3]
    dxp = _canvas(np.zeros(dx__nhwc.shape), oh, ow, kh, kw, stride_h, stride_w, pad_top, pad_left)
    dy = np.asarray(dy__nhwc, dtype=np.float64)
    for i in range(kh):
        for j in range(kw):
            _windows(dxp, i, j, oh, ow, stride_h, stride_w)[...] += dy @ w__hwio[i, j].T
    dx__nhwc[...] = dxp[:, pad_top:pad_top + h, pad_left:pad_left + w]


def conv2d_backward_weight(x__nhwc, dy__nhwc, dw__hwio, db, stride_h, stride_w, pad_top, pad_left,
                           n_threads):
    kh, kw = dw__hwio.shape[:2]
    oh, ow = dy__nhwc.shape[1:3]
    xp = _canvas(x__nhwc, oh, ow, kh, kw, stride_h, stride_w, pad_top, pad_left)
    dy = np.asarray(dy__nhwc, dtype=np.float64)
    for i in range(kh):
        for j in range(kw):
            dw__hwio[i, j] = np.einsum("nhwc,nhwo->co", _windows(xp, i, j, oh, ow, stride_h, stride_w), dy)
    if db is not None:
        db[...] = dy.sum(axis=(0, 1, 2))


# ---- dense -----------------------------------------------------------------------------------

def dense_forward(x__nk, w__ko, bias, out__no, relu, n_threads):
    acc = np.asarray(x__nk, np.float64) @ np.asarray(w__ko, np.float64)
    if bias is not None:
        acc += bias
    if relu:
        np.maximum(acc, 0, out=acc)
    out__no[...] = acc


def dense_backward_input(dy__no, w__ko, dx__nk, n_threads):
    dx__nk[...] = np.asarray(dy__no, np.float64) @ np.asarray(w__ko, np.float64).T


def dense_backward_weight(x__nk, dy__no, dw__ko, db, n_threads):
    dy = np.asarray(dy__no, np.float64)
    dw__ko[...] = np.asarray(x__nk, np.float64).T @ dy
    if db is not None:
        db[...] = dy.sum(axis=0)


# ---- pooling ---------------------------------------------------------------------------------

def maxpool2d_forward(x__nhwc, out__nhwc, argmax__nhwc, pool_h, pool_w, stride_h, stride_w,
                      pad_top, pad_left, n_threads):
    """argmax holds the flat index ``(h * W + w) * C + c`` of the window's maximum inside its
    image. Ties keep the first maximum in row-major window order; padding is never chosen."""
    n, h, w, c = x__nhwc.shape
    oh, ow = out__nhwc.shape[1:3]
    xp = _canvas(x__nhwc, oh, ow, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left, -np.inf)
    best = np.full(out__nhwc.shape, -np.inf)
    where = np.zeros(out__nhwc.shape, dtype=np.int64)
    rows = np.arange(oh)[None, :, None, None] * stride_h - pad_top
    cols = np.arange(ow)[None, None, :, None] * stride_w - pad_left
    chan = np.arange(c)[None, None, None, :]
    for i in range(pool_h):
        for j in range(pool_w):
            v = _windows(xp, i, j, oh, ow, stride_h, stride_w)
            better = v > best  # strict: the first maximum wins ties
            best = np.where(better, v, best)
            where = np.where(better, ((rows + i) * w + (cols + j)) * c + chan, where)
    out__nhwc[...] = best
    argmax__nhwc[...] = where


def maxpool2d_backward(dy__nhwc, argmax__nhwc, dx__nhwc, n_threads):
    n = dx__nhwc.shape[0]
    flat = np.zeros((n, dx__nhwc[0].size))
    for b in range(n):
        np.add.at(flat[b], argmax__nhwc[b].ravel(), dy__nhwc[b].ravel())
    dx__nhwc[...] = flat.reshape(dx__nhwc.shape)


def _window_counts(h, w, oh, ow, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left):
    ones = _canvas(np.ones((1, h, w, 1)), oh, ow, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left)
    return sum(_windows(ones, i, j, oh, ow, stride_h, stride_w)
               for i in range(pool_h) for j in range(pool_w))


def avgpool2d_forward(x__nhwc, out__nhwc, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left,
                      n_threads):
    """Average over the cells of each window that lie inside the input (padding not counted)."""
    h, w = x__nhwc.shape[1:3]
    oh, ow = out__nhwc.shape[1:3]
    xp = _canvas(x__nhwc, oh, ow, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left)
    total = sum(_windows(xp, i, j, oh, ow, stride_h, stride_w)
                for i in range(pool_h) for j in range(pool_w))
    out__nhwc[...] = total / _window_counts(h, w, oh, ow, pool_h, pool_w, stride_h, stride_w,
                                            pad_top, pad_left)


def avgpool2d_backward(dy__nhwc, dx__nhwc, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left,
                       n_threads):
    h, w = dx__nhwc.shape[1:3]
    oh, ow = dy__nhwc.shape[1:3]
    share = dy__nhwc / _window_counts(h, w, oh, ow, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left)
    dxp = _canvas(np.zeros(dx__nhwc.shape), oh, ow, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left)
    for i in range(pool_h):
        for j in range(pool_w):
            _windows(dxp, i, j, oh, ow, stride_h, stride_w)[...] += share
    dx__nhwc[...] = dxp[:, pad_top:pad_top + h, pad_left:pad_left + w]


# ---- activations and dropout (flat arrays) ---------------------------------------------------

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


def dropout_forward(x, uniform, rate, out, n_threads):
    """Keeps x where uniform >= rate, scaled by 1 / (1 - rate)."""
    out[...] = np.where(uniform >= rate, x / (1 - rate), 0)


def dropout_backward(dy, uniform, rate, dx, n_threads):
    dx[...] = np.where(uniform >= rate, dy / (1 - rate), 0)


# ---- fused softmax + cross-entropy -----------------------------------------------------------

def _log_softmax(logits):
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def softmax_cross_entropy(logits__nk, target__nk, grad__nk, loss__n, grad_scale, n_threads):
    """loss_i = -sum_k t_ik log softmax(z_i)_k ; grad = grad_scale * (softmax(z) * sum_k t_ik - t)."""
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


# ---- optimizer updates (Keras 3 rules, in place) ---------------------------------------------

def sgd_update(param, grad, velocity, learning_rate, momentum, nesterov, n_threads):
    if momentum == 0:
        param -= learning_rate * grad
        return
    velocity[...] = momentum * velocity - learning_rate * grad
    if nesterov:
        param += momentum * velocity - learning_rate * grad
    else:
        param += velocity


def adam_update(param, grad, m, v, learning_rate, beta_1, beta_2, epsilon, step, n_threads):
    """``step`` counts from 1. Keras folds the bias corrections into the learning rate."""
    alpha = learning_rate * np.sqrt(1 - beta_2 ** step) / (1 - beta_1 ** step)
    m += (1 - beta_1) * (grad - m)
    v += (1 - beta_2) * (grad * grad - v)
    param -= alpha * m / (np.sqrt(v) + epsilon)
