"""Separable per-image index maps over NHWC images, and their adjoints.

One gather serves flips, integer translations (every fill mode) and zero padding: output pixel
(i, j) of image b copies input pixel (rows[b, i], cols[b, j]), or takes ``fill_value`` where
either index is -1. The adjoint scatters each output gradient back onto the pixel it was copied
from, adding where a map repeats a pixel; filled pixels pass no gradient. Threads split the
images, so no two threads write one element and results do not depend on ``n_threads``.

The index maps may be strided, so a map shared by every image can be a broadcast view.

The affine kernels resample each image through its own affine map of the plane (rotations,
zooms, fractional translations) with nearest or bilinear interpolation, following TensorFlow's
ImageProjectiveTransformV3, which Keras's affine_transform calls: output pixel (row i, column j)
reads the input at column a0*j + a1*i + a2 and row b0*j + b1*i + b2, that point is folded into
the image by the fill mode, and neighbours still outside read ``fill_value``. Their adjoint
scatters each output gradient onto the pixels it was read from, with the same weights; threads
split the images, so each image's sums run in one fixed order.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport floor, round
from libc.string cimport memset

include "_threads.pxi"
include "images.pxi"


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
    check_same_images(n, c, out__nhwc.shape[0], out__nhwc.shape[3], "out")
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
    check_same_images(n, c, dy__nhwc.shape[0], dy__nhwc.shape[3], "dy")
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


cdef enum:
    FILL_CONSTANT = 0
    FILL_NEAREST = 1
    FILL_REFLECT = 2
    FILL_WRAP = 3


cdef inline double _clamp(double v, Py_ssize_t size) noexcept nogil:
    return 0.0 if v < 0 else (<double>(size - 1) if v > size - 1 else v)


cdef inline double _fold(double v, Py_ssize_t size, int fill_mode) noexcept nogil:
    """TensorFlow's map of a coordinate outside [0, size - 1] into the image: "reflect" mirrors
    about the edges (d c b a | a b c d | d c b a), "wrap" tiles (periods counted as TensorFlow
    counts them), "nearest" clamps; "constant" leaves it for the fill value."""
    cdef double period
    if fill_mode == FILL_CONSTANT:
        return v
    if fill_mode == FILL_REFLECT:
        if v < 0 or v > size - 1:
            if size <= 1:
                return 0.0
            period = 2.0 * size
            if v < 0:
                v = v + period * <Py_ssize_t>(-v / period)
                v = v + period if v < -size else -v - 1
            else:
                v = v - period * <Py_ssize_t>(v / period)
                if v >= size:
                    v = period - v - 1
    elif fill_mode == FILL_WRAP:
        if v < 0 or v > size - 1:
            if size <= 1:
                return 0.0
            if v < 0:
                v = v + size * (<Py_ssize_t>(-v / (size - 1)) + 1)
            else:
                v = v - size * <Py_ssize_t>(v / (size - 1))
    return _clamp(v, size)


ctypedef struct Sample:
    Py_ssize_t row, col  # the pixel read (nearest), or the top-left of the 2x2 read (bilinear)
    double wy, wx        # bilinear: the weights of the next row and the next column
    bint inside          # whether the pixel (nearest) or any of the 2x2 (bilinear) is in the image


cdef inline Sample _sample(double xs, double ys, Py_ssize_t h, Py_ssize_t w, int fill_mode,
                           bint bilinear) noexcept nogil:
    """What the output pixel whose source point is (column xs, row ys) reads."""
    cdef Sample s
    xs = _fold(xs, w, fill_mode)
    ys = _fold(ys, h, fill_mode)
    cdef double fy = floor(ys) if bilinear else round(ys)
    cdef double fx = floor(xs) if bilinear else round(xs)
    cdef double first = -1 if bilinear else 0  # a bilinear read may start one pixel out
    s.wy, s.wx = ys - fy, xs - fx
    s.inside = first <= fy < h and first <= fx < w
    s.row = <Py_ssize_t>fy if s.inside else 0
    s.col = <Py_ssize_t>fx if s.inside else 0
    return s


cdef int _check_affine(Py_ssize_t n, Py_ssize_t c, const floating[:, :, :, ::1] other,
                       str name, const double[:, :] transforms, int fill_mode) except -1:
    check_same_images(n, c, other.shape[0], other.shape[3], name)
    if transforms.shape[0] != n or transforms.shape[1] != 6:
        raise ValueError(f"transforms must have shape ({n}, 6), received "
                         f"({transforms.shape[0]}, {transforms.shape[1]})")
    if not FILL_CONSTANT <= fill_mode <= FILL_WRAP:
        raise ValueError(f"fill_mode must be 0, 1, 2 or 3, received {fill_mode}")
    return 0


def affine2d_forward(const floating[:, :, :, ::1] x__nhwc,   # IN  (N, H, W, C)
                     const double[:, :] transforms,           # IN  (N, 6): a0 a1 a2 b0 b1 b2
                     int fill_mode,                           # FILL_CONSTANT ... FILL_WRAP
                     bint bilinear,
                     double fill_value,
                     floating[:, :, :, ::1] out__nhwc,        # OUT (N, OH, OW, C)
                     int n_threads):
    """out[b, i, j] = x[b] sampled at row b0*j + b1*i + b2, column a0*j + a1*i + a2 (the
    coefficients of transforms[b]), folded by fill_mode; bilinear or rounded to the nearest."""
    cdef Py_ssize_t n = x__nhwc.shape[0], h = x__nhwc.shape[1], w = x__nhwc.shape[2]
    cdef Py_ssize_t c = x__nhwc.shape[3]
    cdef Py_ssize_t oh = out__nhwc.shape[1], ow = out__nhwc.shape[2]
    _check_affine(n, c, out__nhwc, "out", transforms, fill_mode)
    cdef Py_ssize_t row, b, i, j, k, r, q
    cdef Sample s
    cdef floating wy, wx, v0, v1, fill = <floating>fill_value
    cdef bint in00, in01, in10, in11
    for row in prange(n * oh, nogil=True, schedule="static",
                      num_threads=threads_for(n * oh * ow * c * (4 if bilinear else 1), n_threads)):
        b = row // oh
        i = row % oh
        for j in range(ow):
            s = _sample(transforms[b, 0] * j + transforms[b, 1] * i + transforms[b, 2],
                        transforms[b, 3] * j + transforms[b, 4] * i + transforms[b, 5],
                        h, w, fill_mode, bilinear)
            r = s.row
            q = s.col
            if not bilinear:
                for k in range(c):
                    out__nhwc[b, i, j, k] = x__nhwc[b, r, q, k] if s.inside else fill
                continue
            wy = <floating>s.wy
            wx = <floating>s.wx
            in00 = s.inside and r >= 0 and q >= 0
            in01 = s.inside and r >= 0 and q + 1 < w
            in10 = s.inside and r + 1 < h and q >= 0
            in11 = s.inside and r + 1 < h and q + 1 < w
            for k in range(c):
                v0 = ((1 - wx) * (x__nhwc[b, r, q, k] if in00 else fill)
                      + wx * (x__nhwc[b, r, q + 1, k] if in01 else fill))
                v1 = ((1 - wx) * (x__nhwc[b, r + 1, q, k] if in10 else fill)
                      + wx * (x__nhwc[b, r + 1, q + 1, k] if in11 else fill))
                out__nhwc[b, i, j, k] = (1 - wy) * v0 + wy * v1


def affine2d_backward(const floating[:, :, :, ::1] dy__nhwc,   # IN  (N, OH, OW, C)
                      const double[:, :] transforms,            # IN  (N, 6)
                      int fill_mode,
                      bint bilinear,
                      floating[:, :, :, ::1] dx__nhwc,          # OUT (N, H, W, C)
                      int n_threads):
    """The adjoint of affine2d_forward in x: each dy[b, i, j] goes back to the pixels it was
    read from, times the weight it was read with; filled neighbours pass no gradient."""
    cdef Py_ssize_t n = dx__nhwc.shape[0], h = dx__nhwc.shape[1], w = dx__nhwc.shape[2]
    cdef Py_ssize_t c = dx__nhwc.shape[3]
    cdef Py_ssize_t oh = dy__nhwc.shape[1], ow = dy__nhwc.shape[2]
    _check_affine(n, c, dy__nhwc, "dy", transforms, fill_mode)
    cdef Py_ssize_t b, i, j, k, r, q
    cdef Sample s
    cdef floating wy, wx
    for b in prange(n, nogil=True, schedule="static",
                    num_threads=threads_for(n * oh * ow * c * (4 if bilinear else 1), n_threads)):
        memset(&dx__nhwc[b, 0, 0, 0], 0, h * w * c * sizeof(floating))
        for i in range(oh):
            for j in range(ow):
                s = _sample(transforms[b, 0] * j + transforms[b, 1] * i + transforms[b, 2],
                            transforms[b, 3] * j + transforms[b, 4] * i + transforms[b, 5],
                            h, w, fill_mode, bilinear)
                if not s.inside:
                    continue
                r = s.row
                q = s.col
                if not bilinear:
                    for k in range(c):
                        dx__nhwc[b, r, q, k] += dy__nhwc[b, i, j, k]
                    continue
                wy = <floating>s.wy
                wx = <floating>s.wx
                if r >= 0 and q >= 0:
                    for k in range(c):
                        dx__nhwc[b, r, q, k] += (1 - wy) * (1 - wx) * dy__nhwc[b, i, j, k]
                if r >= 0 and q + 1 < w:
                    for k in range(c):
                        dx__nhwc[b, r, q + 1, k] += (1 - wy) * wx * dy__nhwc[b, i, j, k]
                if r + 1 < h and q >= 0:
                    for k in range(c):
                        dx__nhwc[b, r + 1, q, k] += wy * (1 - wx) * dy__nhwc[b, i, j, k]
                if r + 1 < h and q + 1 < w:
                    for k in range(c):
                        dx__nhwc[b, r + 1, q + 1, k] += wy * wx * dy__nhwc[b, i, j, k]
