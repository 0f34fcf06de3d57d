"""Separable resampling of NHWC images (bilinear and nearest resize, crops and pads), and its
adjoint.

Output row i of every image is a weighted sum of the input rows row_taps[i, :], and output
column j of the input columns col_taps[j, :] (two taps for bilinear, one for nearest); a tap of
-1 reads ``fill_value`` (the padding of a pad-to-aspect-ratio resize). The weights are worked
out once per geometry by ``fastcnn._ops.resize``.

The adjoint gathers rather than scatters: it takes the transposed maps (for each input row, the
output rows that read it, in CSR form), so each dx element is summed by one thread in a fixed
order and the result does not depend on ``n_threads`` even for a single image.
"""
from cython cimport floating
from cython.parallel cimport prange

include "_threads.pxi"
include "images.pxi"


cdef int _check_taps(const int[:, ::1] taps, Py_ssize_t out_size, Py_ssize_t size,
                     Py_ssize_t weight_rows, Py_ssize_t weight_cols, str name) except -1:
    """Raise unless ``taps`` is (out_size, T) with T >= 1, its weights are of the same shape,
    and every tap is -1 or in [0, size)."""
    cdef Py_ssize_t i, t
    if taps.shape[0] != out_size or taps.shape[1] < 1:
        raise ValueError(f"{name}_taps must have shape ({out_size}, T >= 1), received "
                         f"({taps.shape[0]}, {taps.shape[1]})")
    if weight_rows != taps.shape[0] or weight_cols != taps.shape[1]:
        raise ValueError(f"{name}_weights must have the shape of {name}_taps ({taps.shape[0]}, "
                         f"{taps.shape[1]}), received ({weight_rows}, {weight_cols})")
    for i in range(out_size):
        for t in range(taps.shape[1]):
            if taps[i, t] < -1 or taps[i, t] >= size:
                raise ValueError(f"{name}_taps[{i}, {t}] = {taps[i, t]} is outside [-1, {size})")
    return 0


cdef int _check_transposed(const int[::1] starts, const int[::1] sources, Py_ssize_t n_shares,
                           Py_ssize_t size, Py_ssize_t out_size, str name) except -1:
    """Raise unless ``starts`` (size + 1) bounds rising runs of ``sources`` in [0, out_size)."""
    cdef Py_ssize_t r, e
    if starts.shape[0] != size + 1 or starts[0] != 0 or starts[size] != sources.shape[0]:
        raise ValueError(f"{name}_starts must hold {size + 1} offsets from 0 to the "
                         f"{sources.shape[0]} entries of {name}_sources")
    if n_shares != sources.shape[0]:
        raise ValueError(f"{name}_shares must have the {sources.shape[0]} entries of "
                         f"{name}_sources, received {n_shares}")
    for r in range(size):
        if starts[r + 1] < starts[r]:
            raise ValueError(f"{name}_starts must not decrease, received {starts[r]} then "
                             f"{starts[r + 1]}")
    for e in range(sources.shape[0]):
        if sources[e] < 0 or sources[e] >= out_size:
            raise ValueError(f"{name}_sources[{e}] = {sources[e]} is outside [0, {out_size})")
    return 0


def resize2d_forward(const floating[:, :, :, ::1] x__nhwc,    # IN  (N, H, W, C)
                     const int[:, ::1] row_taps,              # IN  (OH, T): -1 or in [0, H)
                     const floating[:, ::1] row_weights,      # IN  (OH, T)
                     const int[:, ::1] col_taps,              # IN  (OW, U): -1 or in [0, W)
                     const floating[:, ::1] col_weights,      # IN  (OW, U)
                     double fill_value,
                     floating[:, :, :, ::1] out__nhwc,        # OUT (N, OH, OW, C)
                     int n_threads):
    """out[b, i, j] = sum over t, u of row_weights[i, t] * col_weights[j, u] *
    x[b, row_taps[i, t], col_taps[j, u]], with fill_value where a tap is -1."""
    cdef Py_ssize_t n = x__nhwc.shape[0], c = x__nhwc.shape[3]
    cdef Py_ssize_t oh = out__nhwc.shape[1], ow = out__nhwc.shape[2]
    check_same_images(n, c, out__nhwc.shape[0], out__nhwc.shape[3], "out")
    _check_taps(row_taps, oh, x__nhwc.shape[1], row_weights.shape[0], row_weights.shape[1], "row")
    _check_taps(col_taps, ow, x__nhwc.shape[2], col_weights.shape[0], col_weights.shape[1], "col")
    cdef Py_ssize_t nt = row_taps.shape[1], nu = col_taps.shape[1]
    cdef Py_ssize_t row, b, i, j, k, t, u
    cdef int r, s
    cdef floating a, wt, fill = <floating>fill_value
    for row in prange(n * oh, nogil=True, schedule="static",
                      num_threads=threads_for(n * oh * ow * c * nt * nu, n_threads)):
        b = row // oh
        i = row % oh
        for j in range(ow):
            for k in range(c):
                out__nhwc[b, i, j, k] = 0
            for t in range(nt):
                r = row_taps[i, t]
                a = row_weights[i, t]
                for u in range(nu):
                    s = col_taps[j, u]
                    wt = a * col_weights[j, u]
                    if r < 0 or s < 0:
                        for k in range(c):
                            out__nhwc[b, i, j, k] += wt * fill
                    else:
                        for k in range(c):
                            out__nhwc[b, i, j, k] += wt * x__nhwc[b, r, s, k]


def resize2d_backward(const floating[:, :, :, ::1] dy__nhwc,   # IN  (N, OH, OW, C)
                      const int[::1] row_starts,               # IN  (H + 1): CSR offsets
                      const int[::1] row_sources,              # IN  (E,): output rows, in [0, OH)
                      const floating[::1] row_shares,          # IN  (E,)
                      const int[::1] col_starts,               # IN  (W + 1)
                      const int[::1] col_sources,              # IN  (F,): output columns
                      const floating[::1] col_shares,          # IN  (F,)
                      floating[:, :, :, ::1] dx__nhwc,         # OUT (N, H, W, C)
                      int n_threads):
    """dx[b, r, s] = sum over e in row r's run and f in column s's run of row_shares[e] *
    col_shares[f] * dy[b, row_sources[e], col_sources[f]]: the adjoint of resize2d_forward
    when the runs list, for each input row and column, the taps that read it."""
    cdef Py_ssize_t n = dx__nhwc.shape[0], h = dx__nhwc.shape[1], w = dx__nhwc.shape[2]
    cdef Py_ssize_t c = dx__nhwc.shape[3]
    cdef Py_ssize_t oh = dy__nhwc.shape[1], ow = dy__nhwc.shape[2]
    check_same_images(n, c, dy__nhwc.shape[0], dy__nhwc.shape[3], "dy")
    _check_transposed(row_starts, row_sources, row_shares.shape[0], h, oh, "row")
    _check_transposed(col_starts, col_sources, col_shares.shape[0], w, ow, "col")
    cdef Py_ssize_t row, b, r, s, e, f, k
    cdef int i, j
    cdef floating a, wt
    for row in prange(n * h, nogil=True, schedule="static",
                      num_threads=threads_for(n * oh * ow * c, n_threads)):
        b = row // h
        r = row % h
        for s in range(w):
            for k in range(c):
                dx__nhwc[b, r, s, k] = 0
            for e in range(row_starts[r], row_starts[r + 1]):
                i = row_sources[e]
                a = row_shares[e]
                for f in range(col_starts[s], col_starts[s + 1]):
                    j = col_sources[f]
                    wt = a * col_shares[f]
                    for k in range(c):
                        dx__nhwc[b, r, s, k] += wt * dy__nhwc[b, i, j, k]
