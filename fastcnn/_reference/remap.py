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
