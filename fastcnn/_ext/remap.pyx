"""Separable per-image index maps over NHWC images, and their adjoints.

One gather serves flips, integer translations (every fill mode) and zero padding: output pixel
(i, j) of image b copies input pixel (rows[b, i], cols[b, j]), or takes ``fill_value`` where
either index is -1. The adjoint scatters each output gradient back onto the pixel it was copied
from, adding where a map repeats a pixel; filled pixels pass no gradient. Threads split the
images, so no two threads write one element and results do not depend on ``n_threads``.

The index maps may be strided, so a map shared by every image can be a broadcast view.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.string cimport memset

include "_threads.pxi"


cdef int _check_map(const int[:, :] index, Py_ssize_t n, Py_ssize_t out_size, Py_ssize_t size,
                    str name) except -1:
    """Raise unless ``index`` is (n, out_size) with every entry -1 or in [0, size)."""
    cdef Py_ssize_t b, i
    if index.shape[0] != n or index.shape[1] != out_size:
        raise ValueError(f"{name} must have shape ({n}, {out_size}), received "
                         f"({index.shape[0]}, {index.shape[1]})")
    for b in range(n):
        for i in range(out_size):
            if index[b, i] < -1 or index[b, i] >= size:
                raise ValueError(f"{name}[{b}, {i}] = {index[b, i]} is outside [-1, {size})")
    return 0


def remap2d_forward(const floating[:, :, :, ::1] x__nhwc,   # IN  (N, H, W, C)
                    const int[:, :] rows,                    # IN  (N, OH): -1 or in [0, H)
                    const int[:, :] cols,                    # IN  (N, OW): -1 or in [0, W)
                    double fill_value,
                    floating[:, :, :, ::1] out__nhwc,        # OUT (N, OH, OW, C)
                    int n_threads):
    """out[b, i, j, :] = x[b, rows[b, i], cols[b, j], :], or fill_value where an index is -1."""
    cdef Py_ssize_t n = x__nhwc.shape[0], c = x__nhwc.shape[3]
    cdef Py_ssize_t oh = out__nhwc.shape[1], ow = out__nhwc.shape[2]
    if out__nhwc.shape[0] != n or out__nhwc.shape[3] != c:
        raise ValueError(f"out must hold {n} images of {c} channels, received "
                         f"{out__nhwc.shape[0]} of {out__nhwc.shape[3]}")
    _check_map(rows, n, oh, x__nhwc.shape[1], "rows")
    _check_map(cols, n, ow, x__nhwc.shape[2], "cols")
    cdef Py_ssize_t row, b, i, j, k
    cdef int r, s
    for row in prange(n * oh, nogil=True, schedule="static",
                      num_threads=threads_for(n * oh * ow * c, n_threads)):
        b = row // oh
        i = row % oh
        r = rows[b, i]
        for j in range(ow):
            s = cols[b, j]
            if r < 0 or s < 0:
                for k in range(c):
                    out__nhwc[b, i, j, k] = <floating>fill_value
            else:
                for k in range(c):
                    out__nhwc[b, i, j, k] = x__nhwc[b, r, s, k]


def remap2d_backward(const floating[:, :, :, ::1] dy__nhwc,   # IN  (N, OH, OW, C)
                     const int[:, :] rows,                     # IN  (N, OH): -1 or in [0, H)
                     const int[:, :] cols,                     # IN  (N, OW): -1 or in [0, W)
                     floating[:, :, :, ::1] dx__nhwc,          # OUT (N, H, W, C)
                     int n_threads):
    """dx[b, rows[b, i], cols[b, j], :] += dy[b, i, j, :] over every pixel not filled."""
    cdef Py_ssize_t n = dx__nhwc.shape[0], h = dx__nhwc.shape[1], w = dx__nhwc.shape[2]
    cdef Py_ssize_t c = dx__nhwc.shape[3]
    cdef Py_ssize_t oh = dy__nhwc.shape[1], ow = dy__nhwc.shape[2]
    if dy__nhwc.shape[0] != n or dy__nhwc.shape[3] != c:
        raise ValueError(f"dy must hold {n} images of {c} channels, received "
                         f"{dy__nhwc.shape[0]} of {dy__nhwc.shape[3]}")
    _check_map(rows, n, oh, h, "rows")
    _check_map(cols, n, ow, w, "cols")
    cdef Py_ssize_t b, i, j, k
    cdef int r, s
    for b in prange(n, nogil=True, schedule="static",
                    num_threads=threads_for(n * oh * ow * c, n_threads)):
        memset(&dx__nhwc[b, 0, 0, 0], 0, h * w * c * sizeof(floating))
        for i in range(oh):
            r = rows[b, i]
            for j in range(ow):
                s = cols[b, j]
                if r >= 0 and s >= 0:
                    for k in range(c):
                        dx__nhwc[b, r, s, k] += dy__nhwc[b, i, j, k]
