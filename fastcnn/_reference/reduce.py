"""NumPy twins of ``_ext.reduce``."""
import numpy as np

LANES = 16  # as fastcnn/_ext/lanes.pxi


def _lanes(x, ufunc):
    """ufunc (np.add or np.multiply) folded along the last axis of 2-D ``x`` in float64, in the
    kernels' lane order: value j into lane j % LANES, each lane left to right, the lanes folded
    in halves; runs shorter than LANES left to right."""
    x = np.asarray(x, np.float64)
    n = x.shape[1]
    if n < LANES:
        return ufunc.accumulate(x, axis=1)[:, -1]
    full = n - n % LANES
    lane = ufunc.accumulate(x[:, :full].reshape(len(x), full // LANES, LANES), axis=1)[:, -1]
    lane[:, :n - full] = ufunc(lane[:, :n - full], x[:, full:])
    width = LANES // 2
    while width >= 1:
        lane = ufunc(lane[:, :width], lane[:, width:2 * width])
        width //= 2
    return lane[:, 0]


def lane_sum(x):
    """The sums along the last axis of 2-D ``x`` in the kernels' lane order."""
    return _lanes(x, np.add)


def reduce_forward(op, x, out, n_threads):
    """out[o, i] = op over j of x[o, j, i]; sums and products in float64."""
    if op in ("sum", "mean", "prod"):
        ufunc = np.multiply if op == "prod" else np.add
        total = _lanes(x[:, :, 0], ufunc)[:, None] if x.shape[2] == 1 else \
            ufunc.reduce(x.astype(np.float64), axis=1)
        out[...] = total / x.shape[1] if op == "mean" else total
    else:
        out[...] = (np.max if op == "max" else np.min)(x, axis=1)


def extreme_backward(x, y, dy, dx, n_threads):
    """dy split evenly among the entries of each column of x equal to y."""
    hits = x == y[:, None, :]
    dx[...] = np.where(hits, (dy / hits.sum(axis=1))[:, None, :], 0)


def cumsum(x, out, reverse, n_threads):
    """Running sums along axis 1 in float64, from the end with ``reverse``."""
    total = np.cumsum(x.astype(np.float64)[:, ::-1] if reverse else x.astype(np.float64), axis=1)
    out[...] = total[:, ::-1] if reverse else total
