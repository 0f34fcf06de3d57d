"""NumPy twins of ``fastcnn._ext.remap``: per-image index maps (flips, translations, padding)."""
import numpy as np


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


_FILL_MODES = ("constant", "nearest", "reflect", "wrap")  # the kernels' fill_mode codes, in order


def _fold(v, size, fill_mode):
    """TensorFlow's map of coordinates into [0, size - 1] for each fill mode (see the kernel)."""
    mode = _FILL_MODES[fill_mode]
    if mode == "constant":
        return v
    v = v.copy()
    if size > 1 and mode == "reflect":
        period = 2.0 * size
        low, high = v < 0, v > size - 1
        lo = v[low] + period * np.trunc(-v[low] / period)
        v[low] = np.where(lo < -size, lo + period, -lo - 1)
        hi = v[high] - period * np.trunc(v[high] / period)
        v[high] = np.where(hi >= size, period - hi - 1, hi)
    elif size > 1 and mode == "wrap":
        low, high = v < 0, v > size - 1
        v[low] += size * (np.trunc(-v[low] / (size - 1)) + 1)
        v[high] -= size * np.trunc(v[high] / (size - 1))
    elif size <= 1:
        v[:] = 0
    return np.clip(v, 0, size - 1)


def _round(v):
    """C's round: halves away from zero (np.round takes them to even)."""
    return np.where(v >= 0, np.floor(v + 0.5), -np.floor(0.5 - v))


def _affine_taps(transforms, fill_mode, bilinear, h, w, oh, ow):
    """(rows, cols, weights) of shape (N, OH, OW, corners): the pixels each output reads."""
    t = np.asarray(transforms, np.float64)[:, :, None, None]
    i, j = np.arange(oh)[:, None], np.arange(ow)[None, :]
    xs = _fold(t[:, 0] * j + t[:, 1] * i + t[:, 2], w, fill_mode)
    ys = _fold(t[:, 3] * j + t[:, 4] * i + t[:, 5], h, fill_mode)
    if not bilinear:
        return _round(ys)[..., None], _round(xs)[..., None], np.ones(ys.shape + (1,))
    fy, fx = np.floor(ys), np.floor(xs)
    wy, wx = ys - fy, xs - fx
    rows = np.stack([fy, fy, fy + 1, fy + 1], -1)
    cols = np.stack([fx, fx + 1, fx, fx + 1], -1)
    weights = np.stack([(1 - wy) * (1 - wx), (1 - wy) * wx, wy * (1 - wx), wy * wx], -1)
    return rows, cols, weights


def affine2d_forward(x__nhwc, transforms, fill_mode, bilinear, fill_value, out__nhwc, n_threads):
    """Each image sampled through its affine map; neighbours outside read fill_value."""
    x = np.asarray(x__nhwc, np.float64)
    n, h, w, _ = x.shape
    rows, cols, weights = _affine_taps(transforms, fill_mode, bilinear, h, w,
                                       *out__nhwc.shape[1:3])
    inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    b = np.arange(n)[:, None, None, None]
    values = x[b, np.where(inside, rows, 0).astype(int), np.where(inside, cols, 0).astype(int)]
    values = np.where(inside[..., None], values, float(fill_value))
    out__nhwc[...] = (weights[..., None] * values).sum(axis=3)


def affine2d_backward(dy__nhwc, transforms, fill_mode, bilinear, dx__nhwc, n_threads):
    """The adjoint: dy scattered onto the pixels it was read from, times their weights."""
    dy = np.asarray(dy__nhwc, np.float64)
    n, h, w, _ = dx__nhwc.shape
    rows, cols, weights = _affine_taps(transforms, fill_mode, bilinear, h, w, *dy.shape[1:3])
    b = np.broadcast_to(np.arange(n)[:, None, None, None], rows.shape)
    keep = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    acc = np.zeros(dx__nhwc.shape)
    contributions = weights[..., None] * dy[:, :, :, None, :]
    np.add.at(acc, (b[keep], rows[keep].astype(int), cols[keep].astype(int)), contributions[keep])
    dx__nhwc[...] = acc
