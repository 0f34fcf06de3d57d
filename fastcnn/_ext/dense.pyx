"""Dense (fully connected) kernels: forward, dX and dW side by side.

Layouts: x (n, in), weights (in, out), y (n, out). Every ``# OUT`` buffer is overwritten in place.

float32 reuses the convolution passes of ``conv_passes.h``: n rows of x are a 1 x n image
with ``in`` channels under a 1x1 kernel. float64 runs plain loops, for gradient checks.
Results do not depend on ``n_threads``: rows are independent in forward and dX, and dW sums fixed
chunks of ``DW_CHUNK`` rows separately, then adds the chunk sums in chunk order.
"""
from cython cimport floating
from cython.parallel cimport parallel, prange, threadid
from libc.stdlib cimport free
from libc.string cimport memset

include "cpu.pxi"
include "scratch.pxi"
include "conv_passes.pxi"

cdef extern from "dense_narrow.h" nogil:
    ctypedef struct fcnn_narrow_job:
        const float *x
        const float *wt
        const float *bias
        const float *dy
        float *out
        float *dx
        float *dwt
        int n, k, kp, o, relu
    enum:
        FCNN_NARROW_FWD
        FCNN_NARROW_DX
    int fcnn_narrow(int o)
    int fcnn_narrow_rows(int o)
    int fcnn_narrow_kp(int k)
    void fcnn_narrow_pass(int level, int which, const fcnn_narrow_job *jb, int a, int b)
    void fcnn_narrow_pack(const float *w, int k, int o, int kp, int i0, int i1, float *wt)
    int fcnn_narrow_dw_range(int kp, int o, int n_threads)
    void fcnn_narrow_dw(int level, const fcnn_narrow_job *jb, float *dw, int a, int b)
    void fcnn_narrow_db(const float *dy, int n, int o, float *db)

# Rows per dW partial sum. Fixed, so that the summation order never depends on n_threads.
cdef enum:
    DW_CHUNK = 32

# Forward/dX row blocks are multiples of this (every tile height divides it), so no thread gets
# a ragged tile in the middle of the batch; capped so that in-block offsets stay within int.
cdef enum:
    ROW_QUANTUM = 24
    MAX_BLOCK_ROWS = 4080


cdef inline fcnn_geom _rows(int rows, int k, int o) noexcept nogil:
    """rows x k as a 1 x rows image with k channels under a 1x1 kernel giving o channels."""
    cdef fcnn_geom g
    g.h, g.w, g.ci, g.kh, g.kw, g.co = 1, rows, k, 1, 1, o
    g.oh, g.ow, g.sh, g.sw, g.pt, g.pl = 1, rows, 1, 1, 0, 0
    return g


cdef Py_ssize_t _block_rows(Py_ssize_t n, int n_threads) noexcept:
    cdef Py_ssize_t per = (n + n_threads - 1) // n_threads
    return min(MAX_BLOCK_ROWS,
               max(ROW_QUANTUM, (per + ROW_QUANTUM - 1) // ROW_QUANTUM * ROW_QUANTUM))


def _check(str name, tuple got, tuple want):
    if got != want:
        raise ValueError(f"{name} has shape {got}, expected {want}")


def dense_forward(const floating[:, ::1] x__nk,  # IN  (n, in)
                  const floating[:, ::1] w__ko,  # IN  (in, out)
                  const floating[::1] bias,      # IN  (out,) or None
                  floating[:, ::1] out__no,      # OUT (n, out)
                  bint relu, int n_threads):
    """out = relu?(x @ w + bias)."""
    _check("w", (w__ko.shape[0],), (x__nk.shape[1],))
    _check("out", (out__no.shape[0], out__no.shape[1]), (x__nk.shape[0], w__ko.shape[1]))
    if bias is not None:
        _check("bias", (bias.shape[0],), (w__ko.shape[1],))
    if out__no.size == 0:
        return
    if floating is float:
        _forward_f32(x__nk, w__ko, bias, out__no, relu, max(1, n_threads))
    else:
        _forward_f64(x__nk, w__ko, bias, out__no, relu, max(1, n_threads))


def dense_backward_input(const floating[:, ::1] dy__no,  # IN  (n, out)
                         const floating[:, ::1] w__ko,   # IN  (in, out)
                         floating[:, ::1] dx__nk,        # OUT (n, in)
                         int n_threads):
    """dx = dy @ w.T."""
    _check("dy", (dy__no.shape[1],), (w__ko.shape[1],))
    _check("dx", (dx__nk.shape[0], dx__nk.shape[1]), (dy__no.shape[0], w__ko.shape[0]))
    if dx__nk.size == 0:
        return
    if floating is float:
        _backward_input_f32(dy__no, w__ko, dx__nk, max(1, n_threads))
    else:
        _backward_input_f64(dy__no, w__ko, dx__nk, max(1, n_threads))


def dense_backward_weight(const floating[:, ::1] x__nk,   # IN  (n, in)
                          const floating[:, ::1] dy__no,  # IN  (n, out)
                          floating[:, ::1] dw__ko,        # OUT (in, out)
                          floating[::1] db,               # OUT (out,) or None
                          int n_threads):
    """dw = x.T @ dy and db = dy.sum(axis=0); both overwritten, not accumulated."""
    _check("dy", (dy__no.shape[0],), (x__nk.shape[0],))
    _check("dw", (dw__ko.shape[0], dw__ko.shape[1]), (x__nk.shape[1], dy__no.shape[1]))
    if db is not None:
        _check("db", (db.shape[0],), (dy__no.shape[1],))
    if x__nk.shape[0] == 0:
        _zero_gradients(dw__ko, db)
        return
    if dw__ko.size == 0 and (db is None or db.shape[0] == 0):
        return
    if floating is float:
        _backward_weight_f32(x__nk, dy__no, dw__ko, db, max(1, n_threads))
    else:
        _backward_weight_f64(x__nk, dy__no, dw__ko, db, max(1, n_threads))


# ---- float32 ---------------------------------------------------------------------------------

cdef int _forward_f32(const float[:, ::1] x, const float[:, ::1] w, const float[::1] bias,
                      float[:, ::1] out, bint relu, int n_threads) except -1:
    cdef int n = x.shape[0], k = x.shape[1], o = w.shape[1]
    if fcnn_narrow(o):
        return _narrow_f32(FCNN_NARROW_FWD, x, w, bias, out, relu, n_threads)
    cdef int level = fcnn_simd_level(), cb = fcnn_block(level, o)
    cdef size_t nw = fcnn_packed_size(k, o, cb), nb = fcnn_packed_size(1, o, cb)
    cdef Py_ssize_t rows = _block_rows(n, n_threads), blk, r0
    cdef float *buf = _alloc(nw + nb)
    cdef float *bp = NULL
    cdef const float *px = &x[0, 0]
    cdef float *po = &out[0, 0]
    cdef fcnn_geom g
    fcnn_pack_cols(&w[0, 0], k, o, o, 1, cb, buf)
    if bias is not None:
        bp = buf + nw
        fcnn_pack_cols(&bias[0], 1, o, 0, 1, cb, bp)
    for blk in prange((n + rows - 1) // rows, nogil=True, schedule="static",
                      num_threads=n_threads):
        r0 = blk * rows
        g = _rows(min(rows, n - r0), k, o)
        # a 1x1, stride-1, unpadded convolution never touches its canvas argument
        fcnn_forward_image(level, &g, buf, bp, relu, px + r0 * k, po + r0 * o, buf)
    free(buf)
    return 0


cdef int _backward_input_f32(const float[:, ::1] dy, const float[:, ::1] w, float[:, ::1] dx,
                             int n_threads) except -1:
    # dx = dy . w^T: the forward kernel with w^T (out, in) packed as the weights.
    cdef int n = dy.shape[0], k = w.shape[0], o = w.shape[1]
    if fcnn_narrow(o):
        return _narrow_f32(FCNN_NARROW_DX, dy, w, None, dx, False, n_threads)
    cdef int level = fcnn_simd_level(), cb = fcnn_block(level, k)
    cdef Py_ssize_t rows = _block_rows(n, n_threads), blk, r0
    cdef float *buf = _alloc(fcnn_packed_size(o, k, cb))
    cdef const float *pdy = &dy[0, 0]
    cdef float *pdx = &dx[0, 0]
    cdef fcnn_geom g
    fcnn_pack_cols(&w[0, 0], o, k, 1, o, cb, buf)
    for blk in prange((n + rows - 1) // rows, nogil=True, schedule="static",
                      num_threads=n_threads):
        r0 = blk * rows
        g = _rows(min(rows, n - r0), o, k)
        fcnn_forward_image(level, &g, buf, NULL, 0, pdy + r0 * o, pdx + r0 * k, buf)
    free(buf)
    return 0


cdef int _backward_weight_f32(const float[:, ::1] x, const float[:, ::1] dy, float[:, ::1] dw,
                              float[::1] db, int n_threads) except -1:
    # Partial sums: per chunk, dw rows padded to c16 channels, then one db row.
    cdef int level = fcnn_simd_level(), n = x.shape[0], k = x.shape[1], o = dy.shape[1]
    if fcnn_narrow(o):
        return _narrow_backward_weight_f32(x, dy, dw, db, n_threads)
    cdef int c16 = fcnn_round16(o)
    cdef Py_ssize_t nchunks = (n + DW_CHUNK - 1) // DW_CHUNK, c, r0, j
    cdef fcnn_geom g = _rows(DW_CHUNK, k, o)
    cdef size_t step = (<size_t>k + 1) * c16, per = fcnn_dw_scratch_size(&g)
    cdef float *buf = _alloc(nchunks * step + n_threads * per)
    cdef float *scratch = NULL
    cdef float *part
    cdef const float *px = &x[0, 0]
    cdef const float *pdy = &dy[0, 0]
    cdef float *pdw = &dw[0, 0]
    cdef bint has_db = db is not None
    with nogil, parallel(num_threads=n_threads):
        scratch = buf + nchunks * step + threadid() * per
        for c in prange(nchunks, schedule="static"):
            part = buf + c * step
            r0 = c * DW_CHUNK
            memset(part, 0, step * sizeof(float))
            g = _rows(min(DW_CHUNK, n - r0), k, o)
            fcnn_dw_image(level, &g, px + r0 * k, pdy + r0 * o, part,
                          part + k * c16 if has_db else NULL, scratch)
    for j in prange(k, nogil=True, schedule="static", num_threads=n_threads):
        fcnn_sum_parts(buf + j * c16, nchunks, step, o, pdw + j * o)
    if has_db:
        fcnn_sum_parts(buf + k * c16, nchunks, step, o, &db[0])
    free(buf)
    return 0


cdef int _narrow_f32(int which, const float[:, ::1] a, const float[:, ::1] w,
                     const float[::1] bias, float[:, ::1] out, bint relu,
                     int n_threads) except -1:
    # forward: a = x (n, k), out (n, o); dX: a = dy (n, o), out = dx (n, k). w is (k, o).
    cdef int n = a.shape[0], k = w.shape[0], o = w.shape[1]
    cdef int level = fcnn_simd_level(), kp = fcnn_narrow_kp(k)
    cdef Py_ssize_t per = (n + n_threads - 1) // n_threads, cols = kp // n_threads + 1, c, blk
    cdef float *wt = _alloc(<size_t>fcnn_narrow_rows(o) * kp)
    cdef const float *pw = &w[0, 0]
    cdef fcnn_narrow_job jb
    memset(&jb, 0, sizeof(jb))
    jb.wt, jb.n, jb.k, jb.kp, jb.o, jb.relu = wt, n, k, kp, o, relu
    if which == FCNN_NARROW_FWD:
        jb.x, jb.out = &a[0, 0], &out[0, 0]
        jb.bias = &bias[0] if bias is not None else NULL
    else:
        jb.dy, jb.dx = &a[0, 0], &out[0, 0]
    per += per % 2  # whole row pairs per thread
    with nogil, parallel(num_threads=n_threads):
        for c in prange(n_threads, schedule="static"):
            fcnn_narrow_pack(pw, k, o, kp, c * cols, min(kp, c * cols + cols), wt)
        for blk in prange((n + per - 1) // per, schedule="static"):
            fcnn_narrow_pass(level, which, &jb, blk * per, min(n, blk * per + per))
    free(wt)
    return 0


cdef int _narrow_backward_weight_f32(const float[:, ::1] x, const float[:, ::1] dy,
                                     float[:, ::1] dw, float[::1] db, int n_threads) except -1:
    cdef int n = x.shape[0], k = x.shape[1], o = dy.shape[1]
    cdef int level = fcnn_simd_level(), kp = fcnn_narrow_kp(k)
    cdef int span = fcnn_narrow_dw_range(kp, o, n_threads)
    cdef Py_ssize_t i
    cdef float *dwt = _alloc(<size_t>fcnn_narrow_rows(o) * kp)
    cdef float *pdw = &dw[0, 0]
    cdef fcnn_narrow_job jb
    memset(&jb, 0, sizeof(jb))
    jb.x, jb.dy, jb.dwt = &x[0, 0], &dy[0, 0], dwt
    jb.n, jb.k, jb.kp, jb.o = n, k, kp, o
    for i in prange((kp + span - 1) // span, nogil=True, schedule="static",
                    num_threads=n_threads):
        fcnn_narrow_dw(level, &jb, pdw, i * span, min(kp, i * span + span))
    if db is not None:
        fcnn_narrow_db(&dy[0, 0], n, o, &db[0])
    free(dwt)
    return 0


# ---- float64: plain loops, for gradient checks -----------------------------------------------

cdef int _forward_f64(const double[:, ::1] x, const double[:, ::1] w, const double[::1] bias,
                      double[:, ::1] out, bint relu, int n_threads) except -1:
    cdef Py_ssize_t r, j, c
    cdef double xv
    cdef bint has_bias = bias is not None
    for r in prange(x.shape[0], nogil=True, schedule="static", num_threads=n_threads):
        for c in range(w.shape[1]):
            out[r, c] = bias[c] if has_bias else 0.0
        for j in range(x.shape[1]):
            xv = x[r, j]
            for c in range(w.shape[1]):
                out[r, c] += xv * w[j, c]
        if relu:
            for c in range(w.shape[1]):
                if out[r, c] < 0:
                    out[r, c] = 0.0
    return 0


cdef int _backward_input_f64(const double[:, ::1] dy, const double[:, ::1] w, double[:, ::1] dx,
                             int n_threads) except -1:
    cdef Py_ssize_t r, j, c
    cdef double s
    for r in prange(dy.shape[0], nogil=True, schedule="static", num_threads=n_threads):
        for j in range(w.shape[0]):
            s = 0.0
            for c in range(w.shape[1]):
                s = s + dy[r, c] * w[j, c]
            dx[r, j] = s
    return 0


cdef int _backward_weight_f64(const double[:, ::1] x, const double[:, ::1] dy, double[:, ::1] dw,
                              double[::1] db, int n_threads) except -1:
    # One dw row per prange step: each element is summed by one thread, in row order.
    cdef Py_ssize_t r, j, c
    cdef double xv
    for j in prange(x.shape[1], nogil=True, schedule="static", num_threads=n_threads):
        for c in range(dy.shape[1]):
            dw[j, c] = 0.0
        for r in range(x.shape[0]):
            xv = x[r, j]
            for c in range(dy.shape[1]):
                dw[j, c] += xv * dy[r, c]
    if db is not None:
        db[:] = 0.0
        for r in range(dy.shape[0]):
            for c in range(dy.shape[1]):
                db[c] += dy[r, c]
    return 0
