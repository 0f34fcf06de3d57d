"""NumPy twins of ``fastcnn._ext.distance``."""
import numpy as np


def pairwise_distances(x__nd, yt__dm, out__nm, l1, n_threads):
    diff = x__nd[:, :, None].astype(np.float64) - yt__dm[None]
    out__nm[...] = (np.abs(diff) if l1 else diff * diff).sum(axis=1)

def k_smallest(dist__nm, index__nk, dist__nk, n_threads):
    order = np.argsort(dist__nm, axis=1, kind="stable")[:, :index__nk.shape[1]]
    index__nk[...] = order
    dist__nk[...] = np.take_along_axis(dist__nm, order, axis=1)
