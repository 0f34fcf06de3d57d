"""Per-image index maps (flips, translations, zero padding): checked calls of ``_ext.remap``."""
import numpy as np

from .._ext import remap as _remap
from .checks import (as_kernel_array, check_apart, check_index_range, out_buffer,
                     scatter_backward_args)
from .threads import effective_n_threads


def _index_map(index, name):
    """A (batch, positions) int32 index map; a broadcast view stays a view. The kernels check
    each index against the image before using it."""
    index = np.asarray(index)
    if index.dtype.kind not in "iu":
        raise TypeError(f"Expected {name} to hold integers, received dtype {index.dtype}")
    if index.ndim != 2:
        raise ValueError(f"Expected {name} of rank 2 (batch, positions), received shape {index.shape}")
    return index.astype(np.int32, copy=False)


def remap2d_forward(x, rows, cols, fill_value=0.0, out=None, n_threads=None):
    """out[b, i, j] = x[b, rows[b, i], cols[b, j]] for NHWC x, or fill_value where an index is
    -1. The (N, OH) and (N, OW) int32 index maps may be broadcast views."""
    n_threads = effective_n_threads(n_threads)
    x = as_kernel_array(x, "x", 4)
    rows, cols = _index_map(rows, "rows"), _index_map(cols, "cols")
    shape = (x.shape[0], rows.shape[1], cols.shape[1], x.shape[3])
    check_index_range(shape, "out")
    out = out_buffer(out, shape, x.dtype, "out")
    check_apart({"out": out}, {"x": x, "rows": rows, "cols": cols})
    _remap.remap2d_forward(x, rows, cols, fill_value, out, n_threads)
    return out


def remap2d_backward(dy, rows, cols, input_shape, out=None, n_threads=None):
    """The adjoint of remap2d_forward: each gradient goes back to the pixel it was read from."""
    n_threads = effective_n_threads(n_threads)
    input_shape, dy = scatter_backward_args(dy, input_shape)
    rows, cols = _index_map(rows, "rows"), _index_map(cols, "cols")
    dx = out_buffer(out, input_shape, dy.dtype, "out")
    check_apart({"out": dx}, {"dy": dy, "rows": rows, "cols": cols})
    _remap.remap2d_backward(dy, rows, cols, dx, n_threads)
    return dx
