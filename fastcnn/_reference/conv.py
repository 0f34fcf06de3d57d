"""NumPy twins of ``fastcnn._ext.conv``: convolution, and convolution + max pooling (+ dropout)
in one step."""
import numpy as np

from .window import _canvas, _windows
from .dropout import dropout_backward, dropout_forward
from .pool import maxpool2d_backward, maxpool2d_forward, maxpool2d_relu_backward


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
            window = _windows(xp, i, j, oh, ow, stride_h, stride_w)
            dw__hwio[i, j] = np.einsum("nhwc,nhwo->co", window, dy)
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
    _input, and with input_relu the backward of a relu whose output was x. Returns how many
    argmax entries fell outside z, as the kernel does."""
    if dropout_rate > 0:
        masked = np.empty_like(dy__nhwc)
        dropout_backward(dy__nhwc, dropout_seed, dropout_rate, masked, n_threads)
        dy__nhwc = masked
    dz = np.empty(_unpooled_shape(dy__nhwc.shape, pool_h, pool_w, pool_stride_h, pool_stride_w),
                  dy__nhwc.dtype)
    if relu:
        skipped = maxpool2d_relu_backward(dy__nhwc, out__nhwc, argmax__nhwc, dz, n_threads)
    else:
        skipped = maxpool2d_backward(dy__nhwc, argmax__nhwc, dz, n_threads)
    conv2d_backward_weight(x__nhwc, dz, dw__hwio, db, stride_h, stride_w, pad_top, pad_left,
                           n_threads)
    if dx__nhwc is not None:
        conv2d_backward_input(dz, w__hwio, dx__nhwc, stride_h, stride_w, pad_top, pad_left,
                              n_threads)
        if input_relu:
            dx__nhwc[...] = np.where(x__nhwc > 0, dx__nhwc, 0)
    return skipped
