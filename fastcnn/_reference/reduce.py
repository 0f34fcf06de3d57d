"""NumPy twins of ``_ext.reduce``."""
import numpy as np


def reduce_forward(op, x, out, n_threads):
    """out[o, i] = op over j of x[o, j, i]; sums and products in float64."""
    if op in ("sum", "mean"):
        total = np.add.reduce(x.astype(np.float64), axis=1)
        out[...] = total / x.shape[1] if op == "mean" else total
    elif op == "prod":
        out[...] = np.multiply.reduce(x.astype(np.float64), axis=1)
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
