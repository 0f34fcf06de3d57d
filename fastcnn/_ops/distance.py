"""Distances and nearest neighbours (for ``fastcnn.extras.neighbors``): checked calls of
``_ext.distance``."""
import numpy as np

from .._ext import distance as _distance
from .checks import as_kernel_array, check_apart, choice_arg, out_buffer
from .threads import effective_n_threads

DISTANCE_METRICS = ("l1", "l2")


def pairwise_distances(x, yt, metric, out=None, n_threads=None):
    """(n, m) distances from the rows of x (n, d) to the columns of yt (d, m): L1 for "l1",
    squared L2 for "l2"."""
    n_threads = effective_n_threads(n_threads)
    choice_arg(metric, DISTANCE_METRICS, "metric")
    yt = as_kernel_array(yt, "yt", 2)
    x = as_kernel_array(x, "x", 2, yt.dtype)
    if x.shape[1] != yt.shape[0]:
        raise ValueError(f"Expected x with {yt.shape[0]} features, received shape {x.shape}")
    out = out_buffer(out, (x.shape[0], yt.shape[1]), yt.dtype, "out")
    check_apart({"out": out}, {"x": x, "yt": yt})
    _distance.pairwise_distances(x, yt, out, metric == "l1", n_threads)
    return out


def k_smallest(dist, k, index=None, out=None, n_threads=None):
    """Columns and values of each row's k smallest entries, smallest first; ties go to the
    smaller column."""
    n_threads = effective_n_threads(n_threads)
    dist = as_kernel_array(dist, "dist", 2)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= dist.shape[1]:
        raise ValueError(f"Expected k in [1, {dist.shape[1]}], received k={k!r}")
    index = out_buffer(index, (dist.shape[0], k), np.intp, "index")
    out = out_buffer(out, (dist.shape[0], k), dist.dtype, "out")
    check_apart({"index": index, "out": out}, {"dist": dist})
    _distance.k_smallest(dist, index, out, n_threads)
    return index, out
