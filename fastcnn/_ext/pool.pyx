"""Max, average and sum pooling over NHWC images, forward and backward side by side.

Windows are described by pool size, stride and ``pad_top``/``pad_left``; the output's shape
fixes the rest. Cells outside the input never take part: max pooling never picks them, average
pooling does not count them (TensorFlow's rule for "same" padding) and sum pooling adds only the
cells inside. Average and sum pooling share one loop nest, which divides by the count or not.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.string cimport memset

include "cpu.pxi"
include "maxpool.pxi"


def maxpool2d_forward(const floating[:, :, :, ::1] x__nhwc,   # IN
                      floating[:, :, :, ::1] out__nhwc,       # OUT
                      int[:, :, :, ::1] argmax__nhwc,         # OUT
                      int pool_h, int pool_w, int stride_h, int stride_w,
                      int pad_top, int pad_left, int n_threads):
    """Max over each window; argmax stores ``(h * W + w) * C + c`` within the image.

    Ties keep the first maximum in row-major window order, as PyTorch does. The max-pool core of
    maxpool.h, which conv.conv2d_maxpool_forward's pooling runs too; one output row per step.
    """
    cdef Py_ssize_t n = x__nhwc.shape[0], h = x__nhwc.shape[1], w = x__nhwc.shape[2]
    cdef Py_ssize_t c = x__nhwc.shape[3]
    cdef Py_ssize_t oh = out__nhwc.shape[1], ow = out__nhwc.shape[2]
    cdef Py_ssize_t row, b, i
    cdef int level = fcnn_simd_level()
    cdef fcnn_pool_geom p
    p.ph, p.pw, p.kh, p.kw, p.sh, p.sw = oh, ow, pool_h, pool_w, stride_h, stride_w
    p.h, p.pt, p.pl = h, pad_top, pad_left
    if n == 0 or oh == 0 or ow == 0 or c == 0:
        return
    for row in prange(n * oh, nogil=True, schedule="static", num_threads=n_threads):
        b = row // oh
        i = row % oh
        if floating is float:
            fcnn_maxpool_rows_f32(level, &p, &x__nhwc[b, 0, 0, 0], w, c, i, i + 1,
                                  &out__nhwc[b, 0, 0, 0], &argmax__nhwc[b, 0, 0, 0])
        else:
            fcnn_maxpool_rows_f64(&p, &x__nhwc[b, 0, 0, 0], w, c, i, i + 1,
                                  &out__nhwc[b, 0, 0, 0], &argmax__nhwc[b, 0, 0, 0])


def maxpool2d_backward(const floating[:, :, :, ::1] dy__nhwc,   # IN
                       const int[:, :, :, ::1] argmax__nhwc,    # IN
                       floating[:, :, :, ::1] dx__nhwc,         # OUT
                       int n_threads):
    """Scatter each output gradient to the cell its window chose; images never share cells.

    Returns how many argmax entries fell outside the image; those are skipped, never written.
    """
    cdef Py_ssize_t skipped
    with nogil:
        skipped = scatter_to_argmax(dy__nhwc, dy__nhwc, argmax__nhwc, dx__nhwc, False, n_threads)
    return skipped


def maxpool2d_relu_backward(const floating[:, :, :, ::1] dy__nhwc,    # IN
                            const floating[:, :, :, ::1] out__nhwc,   # IN  the pooled output
                            const int[:, :, :, ::1] argmax__nhwc,     # IN
                            floating[:, :, :, ::1] dx__nhwc,          # OUT
                            int n_threads):
    """maxpool2d_backward followed by the backward of a relu that fed the pool, in one pass.

    A window's maximum sits where its argmax points, so the relu passes its gradient exactly when
    the pooled value is positive: masking dy by ``out > 0`` before the scatter is the same sum,
    without a separate pass over the (4x larger) input. Returns the count of skipped
    out-of-range argmax entries, as maxpool2d_backward does.
    """
    cdef Py_ssize_t skipped
    with nogil:
        skipped = scatter_to_argmax(dy__nhwc, out__nhwc, argmax__nhwc, dx__nhwc, True, n_threads)
    return skipped


cdef Py_ssize_t scatter_to_argmax(const floating[:, :, :, ::1] dy__nhwc,
                                  const floating[:, :, :, ::1] out__nhwc,
                                  const int[:, :, :, ::1] argmax__nhwc,
                                  floating[:, :, :, ::1] dx__nhwc,
                                  bint positive_only, int n_threads) noexcept nogil:
    cdef Py_ssize_t n = dx__nhwc.shape[0]
    cdef Py_ssize_t image = dx__nhwc.shape[1] * dx__nhwc.shape[2] * dx__nhwc.shape[3]
    cdef Py_ssize_t outs = dy__nhwc.shape[1] * dy__nhwc.shape[2] * dy__nhwc.shape[3]
    cdef Py_ssize_t b
    cdef Py_ssize_t bad = 0
    for b in prange(n, schedule="static", num_threads=n_threads):
        if floating is float:
            bad += fcnn_maxpool_scatter_f32(&dy__nhwc[b, 0, 0, 0], &out__nhwc[b, 0, 0, 0],
                                            &argmax__nhwc[b, 0, 0, 0], outs, image,
                                            positive_only, &dx__nhwc[b, 0, 0, 0])
        else:
            bad += fcnn_maxpool_scatter_f64(&dy__nhwc[b, 0, 0, 0], &out__nhwc[b, 0, 0, 0],
                                            &argmax__nhwc[b, 0, 0, 0], outs, image,
                                            positive_only, &dx__nhwc[b, 0, 0, 0])
    return bad


def avgpool2d_forward(const floating[:, :, :, ::1] x__nhwc,   # IN
                      floating[:, :, :, ::1] out__nhwc,       # OUT
                      int pool_h, int pool_w, int stride_h, int stride_w,
                      int pad_top, int pad_left, int n_threads):
    """Mean over the cells of each window that lie inside the input."""
    with nogil:
        _window_sum_forward(x__nhwc, out__nhwc, pool_h, pool_w, stride_h, stride_w, pad_top,
                            pad_left, True, n_threads)


def sumpool2d_forward(const floating[:, :, :, ::1] x__nhwc,   # IN
                      floating[:, :, :, ::1] out__nhwc,       # OUT
                      int pool_h, int pool_w, int stride_h, int stride_w,
                      int pad_top, int pad_left, int n_threads):
    """Sum over the cells of each window that lie inside the input."""
    with nogil:
        _window_sum_forward(x__nhwc, out__nhwc, pool_h, pool_w, stride_h, stride_w, pad_top,
                            pad_left, False, n_threads)


cdef void _window_sum_forward(const floating[:, :, :, ::1] x__nhwc,
                              floating[:, :, :, ::1] out__nhwc,
                              int pool_h, int pool_w, int stride_h, int stride_w,
                              int pad_top, int pad_left, bint mean, int n_threads) noexcept nogil:
    cdef Py_ssize_t n = x__nhwc.shape[0], h = x__nhwc.shape[1], w = x__nhwc.shape[2]
    cdef Py_ssize_t c = x__nhwc.shape[3]
    cdef Py_ssize_t oh = out__nhwc.shape[1], ow = out__nhwc.shape[2]
    cdef Py_ssize_t row, b, i, j, k, r, s, r0, r1, s0, s1
    cdef floating inv
    for row in prange(n * oh, schedule="static", num_threads=n_threads):
        b = row // oh
        i = row % oh
        r0 = max(i * stride_h - pad_top, 0)
        r1 = min(i * stride_h - pad_top + pool_h, h)
        for j in range(ow):
            s0 = max(j * stride_w - pad_left, 0)
            s1 = min(j * stride_w - pad_left + pool_w, w)
            for k in range(c):
                out__nhwc[b, i, j, k] = 0
            for r in range(r0, r1):
                for s in range(s0, s1):
                    for k in range(c):
                        out__nhwc[b, i, j, k] += x__nhwc[b, r, s, k]
            if mean:
                inv = 1.0 / ((r1 - r0) * (s1 - s0))
                for k in range(c):
                    out__nhwc[b, i, j, k] *= inv


def avgpool2d_backward(const floating[:, :, :, ::1] dy__nhwc,   # IN
                       floating[:, :, :, ::1] dx__nhwc,         # OUT
                       int pool_h, int pool_w, int stride_h, int stride_w,
                       int pad_top, int pad_left, int n_threads):
    """Spread each output gradient evenly over the input cells its window averaged."""
    with nogil:
        _window_sum_backward(dy__nhwc, dx__nhwc, pool_h, pool_w, stride_h, stride_w, pad_top,
                             pad_left, True, n_threads)


def sumpool2d_backward(const floating[:, :, :, ::1] dy__nhwc,   # IN
                       floating[:, :, :, ::1] dx__nhwc,         # OUT
                       int pool_h, int pool_w, int stride_h, int stride_w,
                       int pad_top, int pad_left, int n_threads):
    """Give each output gradient in full to every input cell its window summed."""
    with nogil:
        _window_sum_backward(dy__nhwc, dx__nhwc, pool_h, pool_w, stride_h, stride_w, pad_top,
                             pad_left, False, n_threads)


cdef void _window_sum_backward(const floating[:, :, :, ::1] dy__nhwc,
                               floating[:, :, :, ::1] dx__nhwc,
                               int pool_h, int pool_w, int stride_h, int stride_w,
                               int pad_top, int pad_left, bint mean, int n_threads) noexcept nogil:
    cdef Py_ssize_t n = dx__nhwc.shape[0], h = dx__nhwc.shape[1], w = dx__nhwc.shape[2]
    cdef Py_ssize_t c = dx__nhwc.shape[3]
    cdef Py_ssize_t oh = dy__nhwc.shape[1], ow = dy__nhwc.shape[2]
    cdef Py_ssize_t b, i, j, k, r, s, r0, r1, s0, s1
    cdef floating inv
    for b in prange(n, schedule="static", num_threads=n_threads):
        memset(&dx__nhwc[b, 0, 0, 0], 0, h * w * c * sizeof(floating))
        for i in range(oh):
            r0 = max(i * stride_h - pad_top, 0)
            r1 = min(i * stride_h - pad_top + pool_h, h)
            for j in range(ow):
                s0 = max(j * stride_w - pad_left, 0)
                s1 = min(j * stride_w - pad_left + pool_w, w)
                inv = 1.0 / ((r1 - r0) * (s1 - s0)) if mean else 1.0
                for r in range(r0, r1):
                    for s in range(s0, s1):
                        for k in range(c):
                            dx__nhwc[b, r, s, k] += dy__nhwc[b, i, j, k] * inv
