"""NumPy twins of ``fastcnn._ext.pool``."""
import numpy as np

from .window import _canvas, _windows


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
    return maxpool2d_backward(np.where(out__nhwc > 0, dy__nhwc, 0), argmax__nhwc, dx__nhwc,
                              n_threads)

def _window_sums(x__nhwc, oh, ow, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left):
    xp = _canvas(x__nhwc, oh, ow, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left)
    return sum(_windows(xp, i, j, oh, ow, stride_h, stride_w)
               for i in range(pool_h) for j in range(pool_w))

def _window_counts(h, w, oh, ow, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left):
    """How many cells of the input each window covers."""
    return _window_sums(np.ones((1, h, w, 1)), oh, ow, pool_h, pool_w, stride_h, stride_w,
                        pad_top, pad_left)

def _spread(share, dx__nhwc, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left):
    """dx = the sum, over windows, of each window's ``share`` added to every cell it covers."""
    h, w = dx__nhwc.shape[1:3]
    oh, ow = share.shape[1:3]
    dxp = _canvas(np.zeros(dx__nhwc.shape), oh, ow, pool_h, pool_w, stride_h, stride_w, pad_top,
                  pad_left)
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
    out__nhwc[...] = (_window_sums(x__nhwc, oh, ow, *geometry)
                      / _window_counts(h, w, oh, ow, *geometry))

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
    out__nhwc[...] = _window_sums(x__nhwc, oh, ow, pool_h, pool_w, stride_h, stride_w, pad_top,
                                  pad_left)

def sumpool2d_backward(dy__nhwc, dx__nhwc, pool_h, pool_w, stride_h, stride_w, pad_top, pad_left,
                       n_threads):
    _spread(np.asarray(dy__nhwc, np.float64), dx__nhwc, pool_h, pool_w, stride_h, stride_w,
            pad_top, pad_left)
