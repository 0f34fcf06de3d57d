"""NumPy twins of every kernel in ``fastcnn._ext``: slow, obvious, used by the tests.

Each twin has the name and exactly the signature of its kernel: it reads the ``# IN`` arrays and
writes the ``# OUT`` arrays in place. ``n_threads`` is accepted and ignored. The sections follow
the kernel modules, one section per module (``conv``, ``dense``, ``pool``, ``activation``,
``dropout``, ``loss``, ``normalization``, ``optim``, ``regularization``, ``remap``,
``distance``); names starting with ``_`` are the twins' own helpers. Layouts: activations NHWC,
conv weights HWIO ``(kh, kw, c_in, c_out)``, dense weights ``(in, out)``.

Padding is given as ``pad_top``/``pad_left``; the output's shape fixes the rest. Cells that the
window reaches past the input on the bottom/right count as zeros (conv) or are ignored (pooling).
"""
import numpy as np


# ---- window helpers, shared by the conv and pool twins ---------------------------------------

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


# ---- conv: convolution, and convolution + max pooling (+ dropout) in one step ----------------

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

def _unpooled_shape(pooled_shape, pool_h, pool_w, pool_stride_h, pool_stride_w):
    """The part of a conv output that max pooling windows read."""
    n, ph, pw, c = pooled_shape
    return n, (ph - 1) * pool_stride_h + pool_h, (pw - 1) * pool_stride_w + pool_w, c

def conv2d_maxpool_forward(x__nhwc, w__hwio, bias, out__nhwc, argmax__nhwc, stride_h, stride_w,
                           pad_top, pad_left, relu, pool_h, pool_w, pool_stride_h, pool_stride_w,
                           n_threads, dropout_seed=0, dropout_rate=0):
    """conv2d_forward of the conv output that windows read, then maxpool2d_forward of that, then
    dropout_forward."""
    z = np.empty(_unpooled_shape(out__nhwc.shape, pool_h, pool_w, pool_stride_h, pool_stride_w),
                 out__nhwc.dtype)
    conv2d_forward(x__nhwc, w__hwio, bias, z, stride_h, stride_w, pad_top, pad_left, relu,
                   n_threads)
    where = np.empty(out__nhwc.shape, np.int32) if argmax__nhwc is None else argmax__nhwc
    maxpool2d_forward(z, out__nhwc, where, pool_h, pool_w, pool_stride_h, pool_stride_w, 0, 0,
                      n_threads)
    if dropout_rate > 0:
        dropout_forward(out__nhwc, dropout_seed, dropout_rate, out__nhwc, n_threads)

def conv2d_maxpool_backward(x__nhwc, dy__nhwc, out__nhwc, argmax__nhwc, w__hwio, dw__hwio, db,
                            dx__nhwc, stride_h, stride_w, pad_top, pad_left, relu, pool_h, pool_w,
                            pool_stride_h, pool_stride_w, input_relu, n_threads, dropout_seed=0,
                            dropout_rate=0):
    """The dropout's backward, the pooling's (and the relu's), then conv2d_backward_weight and
    _input, and with input_relu the backward of a relu whose output was x."""
    if dropout_rate > 0:
        masked = np.empty_like(dy__nhwc)
        dropout_backward(dy__nhwc, dropout_seed, dropout_rate, masked, n_threads)
        dy__nhwc = masked
    dz = np.empty(_unpooled_shape(dy__nhwc.shape, pool_h, pool_w, pool_stride_h, pool_stride_w),
                  dy__nhwc.dtype)
    if relu:
        maxpool2d_relu_backward(dy__nhwc, out__nhwc, argmax__nhwc, dz, n_threads)
    else:
        maxpool2d_backward(dy__nhwc, argmax__nhwc, dz, n_threads)
    conv2d_backward_weight(x__nhwc, dz, dw__hwio, db, stride_h, stride_w, pad_top, pad_left,
                           n_threads)
    if dx__nhwc is not None:
        conv2d_backward_input(dz, w__hwio, dx__nhwc, stride_h, stride_w, pad_top, pad_left,
                              n_threads)
        if input_relu:
            dx__nhwc[...] = np.where(x__nhwc > 0, dx__nhwc, 0)
    return 0


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


# ---- pool ------------------------------------------------------------------------------------

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
    """Returns how many argmax entries fell outside the image; those are skipped."""
    n = dx__nhwc.shape[0]
    flat = np.zeros((n, dx__nhwc[0].size))
    inside = (argmax__nhwc >= 0) & (argmax__nhwc < flat.shape[1])
    for b in range(n):
        np.add.at(flat[b], argmax__nhwc[b][inside[b]], np.asarray(dy__nhwc[b])[inside[b]])
    dx__nhwc[...] = flat.reshape(dx__nhwc.shape)
    return int(np.count_nonzero(~inside))

def maxpool2d_relu_backward(dy__nhwc, out__nhwc, argmax__nhwc, dx__nhwc, n_threads):
    """maxpool2d_backward of dy masked where the pooled relu output is not positive."""
    return maxpool2d_backward(np.where(out__nhwc > 0, dy__nhwc, 0), argmax__nhwc, dx__nhwc, n_threads)

def _window_counts(h, w, oh, ow, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left):
    ones = _canvas(np.ones((1, h, w, 1)), oh, ow, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left)
    return sum(_windows(ones, i, j, oh, ow, stride_h, stride_w)
               for i in range(pool_h) for j in range(pool_w))

def _window_sums(x__nhwc, oh, ow, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left):
    xp = _canvas(x__nhwc, oh, ow, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left)
    return sum(_windows(xp, i, j, oh, ow, stride_h, stride_w)
               for i in range(pool_h) for j in range(pool_w))

def _spread(share, dx__nhwc, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left):
    """dx = the sum, over windows, of each window's ``share`` added to every cell it covers."""
    h, w = dx__nhwc.shape[1:3]
    oh, ow = share.shape[1:3]
    dxp = _canvas(np.zeros(dx__nhwc.shape), oh, ow, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left)
    for i in range(pool_h):
        for j in range(pool_w):
            _windows(dxp, i, j, oh, ow, stride_h, stride_w)[...] += share
    dx__nhwc[...] = dxp[:, pad_top:pad_top + h, pad_left:pad_left + w]

def avgpool2d_forward(x__nhwc, out__nhwc, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left,
                      n_threads):
    """Average over the cells of each window that lie inside the input (padding not counted)."""
    h, w = x__nhwc.shape[1:3]
    oh, ow = out__nhwc.shape[1:3]
    geometry = (pool_h, pool_w, stride_h, stride_w, pad_top, pad_left)
    out__nhwc[...] = _window_sums(x__nhwc, oh, ow, *geometry) / _window_counts(h, w, oh, ow, *geometry)

def avgpool2d_backward(dy__nhwc, dx__nhwc, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left,
                       n_threads):
    h, w = dx__nhwc.shape[1:3]
    oh, ow = dy__nhwc.shape[1:3]
    geometry = (pool_h, pool_w, stride_h, stride_w, pad_top, pad_left)
    _spread(dy__nhwc / _window_counts(h, w, oh, ow, *geometry), dx__nhwc, *geometry)

def sumpool2d_forward(x__nhwc, out__nhwc, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left,
                      n_threads):
    """Sum over the cells of each window that lie inside the input."""
    oh, ow = out__nhwc.shape[1:3]
    out__nhwc[...] = _window_sums(x__nhwc, oh, ow, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left)

def sumpool2d_backward(dy__nhwc, dx__nhwc, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left,
                       n_threads):
    _spread(np.asarray(dy__nhwc, np.float64), dx__nhwc, pool_h, pool_w, stride_h, stride_w,
            pad_top, pad_left)


# ---- activation: flat arrays, and softmax over the rows of (N, K) ----------------------------

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


# ---- dropout (flat arrays) -------------------------------------------------------------------

def _mix32(x):
    """lowbias32 on uint32 arrays (wrap-around multiplies)."""
    x = (x ^ (x >> np.uint32(16))) * np.uint32(0x7FEB352D)
    x = (x ^ (x >> np.uint32(15))) * np.uint32(0x846CA68B)
    return x ^ (x >> np.uint32(16))

def dropout_keep(seed, n, rate):
    """The kernels' mask: element j is kept when its 16-bit draw reaches ceil(rate * 2**16). The
    draw is the low half of h(m) for j % 32 < 16, else its high half, with m = (j // 32) * 16 +
    j % 16 and h(m) = mix32(mix32(lo ^ k1) + k2); lo is the low half of m, and (k1, k2) the
    halves of splitmix64(seed, high half of m)."""
    j = np.arange(n, dtype=np.uint64)
    m = ((j >> np.uint64(5)) << np.uint64(4)) | (j & np.uint64(15))
    with np.errstate(over="ignore"):  # the hashes rely on wrap-around
        z = np.uint64(seed) + ((m >> np.uint64(32)) + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        key = z ^ (z >> np.uint64(31))
        k1 = (key & np.uint64(0xFFFFFFFF)).astype(np.uint32)
        k2 = (key >> np.uint64(32)).astype(np.uint32)
        h = _mix32(_mix32(m.astype(np.uint32) ^ k1) + k2)
    draw = np.where(j & np.uint64(16), h >> np.uint32(16), h & np.uint32(0xFFFF))
    return draw >= np.uint32(np.ceil(rate * 2**16))

def dropout_forward(x, seed, rate, out, n_threads):
    """Keeps x[i] where dropout_keep(seed, ...)[i], scaled by 1 / (1 - rate); the rest are 0."""
    out[...] = np.where(dropout_keep(seed, x.size, rate).reshape(x.shape), x / (1 - rate), 0)

def dropout_backward(dy, seed, rate, dx, n_threads):
    dx[...] = np.where(dropout_keep(seed, dy.size, rate).reshape(dy.shape), dy / (1 - rate), 0)


# ---- loss: per-row loss, gradient scaled by grad_scale ---------------------------------------

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


# ---- normalization: batch normalisation of the columns of an (M, C) matrix -------------------

def batchnorm_forward_training(x__mc, gamma, beta, moving_mean, moving_var, y__mc, mean, inv_std,
                               partial__k2c, momentum, epsilon, n_threads):
    """Batch statistics (biased variance) normalise x and move the moving ones; ``partial`` is
    the kernel's scratch and is left alone here."""
    x = np.asarray(x__mc, np.float64)
    mu = x.mean(axis=0)
    var = ((x - mu) ** 2).mean(axis=0)
    mean[...] = mu
    inv_std[...] = 1 / np.sqrt(var + epsilon)
    moving_mean[...] = moving_mean * momentum + mu * (1 - momentum)
    moving_var[...] = moving_var * momentum + var * (1 - momentum)
    y__mc[...] = (x - mu) / np.sqrt(var + epsilon) * gamma + beta

def batchnorm_forward_inference(x__mc, gamma, beta, moving_mean, moving_var, y__mc, inv_std,
                                epsilon, n_threads):
    s = 1 / np.sqrt(np.asarray(moving_var, np.float64) + epsilon)
    inv_std[...] = s
    y__mc[...] = (np.asarray(x__mc, np.float64) - moving_mean) * s * gamma + beta

def batchnorm_backward(x__mc, dy__mc, gamma, mean, inv_std, dx__mc, dgamma, dbeta, partial__k2c,
                       batch_stats, n_threads):
    xhat = (np.asarray(x__mc, np.float64) - mean) * inv_std
    dy = np.asarray(dy__mc, np.float64)
    dbeta[...] = dy.sum(axis=0)
    dgamma[...] = (dy * xhat).sum(axis=0)
    if dx__mc is None:
        return
    if batch_stats:
        dy = dy - dy.mean(axis=0) - xhat * (dy * xhat).mean(axis=0)
    dx__mc[...] = gamma * np.asarray(inv_std, np.float64) * dy


# ---- optim: Keras 3's update rules, in place -------------------------------------------------

def _sgd_rule(param, grad, velocity, learning_rate, momentum, nesterov):
    if momentum == 0:
        param -= learning_rate * grad
        return
    velocity[...] = momentum * velocity - learning_rate * grad
    if nesterov:
        param += momentum * velocity - learning_rate * grad
    else:
        param += velocity

def _adam_rule(param, grad, m, v, learning_rate, beta_1, beta_2, epsilon, step, weight_decay):
    """``step`` counts from 1. Keras folds the bias corrections into the learning rate; AdamW
    shrinks the weight first."""
    if weight_decay:
        param += -learning_rate * weight_decay * param
    alpha = learning_rate * np.sqrt(1 - beta_2 ** step) / (1 - beta_1 ** step)
    m += (1 - beta_1) * (grad - m)
    v += (1 - beta_2) * (grad * grad - v)
    param -= alpha * m / (np.sqrt(v) + epsilon)

def _rmsprop_rule(param, grad, mean_square, momentum_buffer, mean_grad, learning_rate, rho,
                  momentum, epsilon, centered):
    """Keras's rule: epsilon goes inside the square root."""
    mean_square[...] = rho * mean_square + (1 - rho) * grad * grad
    if centered:
        mean_grad[...] = rho * mean_grad + (1 - rho) * grad
        step = learning_rate * grad / np.sqrt(mean_square - mean_grad * mean_grad + epsilon)
    else:
        step = learning_rate * grad / np.sqrt(mean_square + epsilon)
    if momentum > 0:
        momentum_buffer[...] = momentum * momentum_buffer + step
        param -= momentum_buffer
    else:
        param -= step

# The kernels update a list of tensors in one call; each tensor on its own here.
def sgd_update(params, grads, velocities, learning_rate, momentum, nesterov, n_threads):
    for p, g, v in zip(params, grads, velocities):
        _sgd_rule(p, g, v, learning_rate, momentum, nesterov)

def adam_update(params, grads, m, v, learning_rate, beta_1, beta_2, epsilon, step, weight_decay,
                n_threads):
    for p, g, mt, vt in zip(params, grads, m, v):
        _adam_rule(p, g, mt, vt, learning_rate, beta_1, beta_2, epsilon, step, weight_decay)

def rmsprop_update(params, grads, mean_square, momentum_buffer, mean_grad, learning_rate, rho,
                   momentum, epsilon, centered, n_threads):
    for p, g, ms, buf, mg in zip(params, grads, mean_square, momentum_buffer, mean_grad):
        _rmsprop_rule(p, g, ms, buf, mg, learning_rate, rho, momentum, epsilon, centered)


# ---- regularization --------------------------------------------------------------------------

def axpy(x, y, alpha, n_threads):
    y += alpha * x

def sum_of_squares(x, partial, n_threads):
    """partial[c] = sum of x^2 over the c-th of len(partial) equal runs of x (the last shorter)."""
    size = -(-len(x) // len(partial))
    for c in range(len(partial)):
        run = np.asarray(x[c * size:(c + 1) * size], np.float64)
        partial[c] = (run * run).sum()


# ---- remap: per-image index maps (flips, translations, padding) ------------------------------

def remap2d_forward(x__nhwc, rows, cols, fill_value, out__nhwc, n_threads):
    """out[b, i, j] = x[b, rows[b, i], cols[b, j]], or fill_value where an index is -1."""
    b = np.arange(len(x__nhwc))[:, None, None]
    r, s = np.asarray(rows)[:, :, None], np.asarray(cols)[:, None, :]
    gathered = np.asarray(x__nhwc)[b, np.maximum(r, 0), np.maximum(s, 0)]
    out__nhwc[...] = np.where(((r >= 0) & (s >= 0))[..., None], gathered, fill_value)

def remap2d_backward(dy__nhwc, rows, cols, dx__nhwc, n_threads):
    """dx[b, rows[b, i], cols[b, j]] += dy[b, i, j] wherever neither index is -1."""
    b = np.arange(len(dy__nhwc))[:, None, None]
    r, s = np.asarray(rows)[:, :, None], np.asarray(cols)[:, None, :]
    b, r, s = np.broadcast_arrays(b, r, s)
    keep = (r >= 0) & (s >= 0)
    acc = np.zeros(dx__nhwc.shape)
    np.add.at(acc, (b[keep], r[keep], s[keep]), np.asarray(dy__nhwc, np.float64)[keep])
    dx__nhwc[...] = acc


# ---- distance --------------------------------------------------------------------------------

def pairwise_distances(x__nd, yt__dm, out__nm, l1, n_threads):
    diff = x__nd[:, :, None].astype(np.float64) - yt__dm[None]
    out__nm[...] = (np.abs(diff) if l1 else diff * diff).sum(axis=1)

def k_smallest(dist__nm, index__nk, dist__nk, n_threads):
    order = np.argsort(dist__nm, axis=1, kind="stable")[:, :index__nk.shape[1]]
    index__nk[...] = order
    dist__nk[...] = np.take_along_axis(dist__nm, order, axis=1)
