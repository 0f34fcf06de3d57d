"""NumPy twins of ``fastcnn._ext.depthwise``: depthwise convolution, weights ``(kh, kw, c, dm)``,
output channel ``ch * dm + m`` from input channel ``ch``."""
import numpy as np

from .conv import _dilated_canvas
from .dense import _store_biased
from .normalization import _chunk_moments
from .window import _windows


def _taps(w__hwcm, dilation_h, dilation_w):
    """(i, j, the offset of tap (i, j) in the padded input) of every kernel tap."""
    kh, kw = w__hwcm.shape[:2]
    return [(i, j, i * dilation_h, j * dilation_w) for i in range(kh) for j in range(kw)]


def _padded(a, out_shape, w__hwcm, stride_h, stride_w, dilation_h, dilation_w, pad_top,
            pad_left):
    """a on a canvas that every dilated window of the output fits in."""
    kh, kw = w__hwcm.shape[:2]
    return _dilated_canvas(a, out_shape[1], out_shape[2], kh, kw, stride_h, stride_w, pad_top,
                           pad_left, dilation_h, dilation_w)


def depthwise_forward(x__nhwc, w__hwcm, bias, out__nhwc, stride_h, stride_w, dilation_h,
                      dilation_w, pad_top, pad_left, relu, n_threads, moments__k2c=None,
                      chunk_rows=1):
    """The depthwise convolution; moments (unless None) of out's rows in chunks of chunk_rows."""
    n, oh, ow, co = out__nhwc.shape
    c, dm = w__hwcm.shape[2:]
    xp = _padded(x__nhwc, out__nhwc.shape, w__hwcm, stride_h, stride_w, dilation_h, dilation_w,
                 pad_top, pad_left)
    acc = np.zeros((n, oh, ow, c, dm))
    for i, j, di, dj in _taps(w__hwcm, dilation_h, dilation_w):
        acc += _windows(xp, di, dj, oh, ow, stride_h, stride_w)[..., None] * w__hwcm[i, j]
    acc = acc.reshape(n, oh, ow, co)
    _store_biased(acc, bias, relu, out__nhwc)
    if moments__k2c is not None:
        moments__k2c[...] = _chunk_moments(out__nhwc.reshape(-1, co), chunk_rows)

def depthwise_backward_input(dy__nhwc, w__hwcm, dx__nhwc, stride_h, stride_w, dilation_h,
                             dilation_w, pad_top, pad_left, n_threads):
    n, oh, ow, _ = dy__nhwc.shape
    h, w, c = dx__nhwc.shape[1:]
    dy = np.asarray(dy__nhwc, dtype=np.float64).reshape(n, oh, ow, c, -1)
    dxp = _padded(np.zeros(dx__nhwc.shape), dy__nhwc.shape, w__hwcm, stride_h, stride_w,
                  dilation_h, dilation_w, pad_top, pad_left)
    for i, j, di, dj in _taps(w__hwcm, dilation_h, dilation_w):
        _windows(dxp, di, dj, oh, ow, stride_h, stride_w)[...] += (dy * w__hwcm[i, j]).sum(-1)
    dx__nhwc[...] = dxp[:, pad_top:pad_top + h, pad_left:pad_left + w]

def depthwise_backward_weight(x__nhwc, dy__nhwc, dw__hwcm, db, partial__kp, stride_h, stride_w,
                              dilation_h, dilation_w, pad_top, pad_left, n_threads):
    n, oh, ow, _ = dy__nhwc.shape
    c = x__nhwc.shape[3]
    dy = np.asarray(dy__nhwc, dtype=np.float64).reshape(n, oh, ow, c, -1)
    xp = _padded(x__nhwc, dy__nhwc.shape, dw__hwcm, stride_h, stride_w, dilation_h, dilation_w,
                 pad_top, pad_left)
    for i, j, di, dj in _taps(dw__hwcm, dilation_h, dilation_w):
        dw__hwcm[i, j] = np.einsum("nhwc,nhwcm->cm", _windows(xp, di, dj, oh, ow, stride_h,
                                                               stride_w), dy)
    if db is not None:
        db[...] = dy.sum(axis=(0, 1, 2)).reshape(-1)
