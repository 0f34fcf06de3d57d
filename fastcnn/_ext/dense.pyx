"""Dense (fully connected) kernels: forward, dX and dW side by side.

Layouts: x (n, in), weights (in, out), y (n, out). Every ``# OUT`` buffer is overwritten in place.

The kernels reuse the convolution passes of ``conv_passes.h``: n rows of x are a 1 x n image
with ``in`` channels under a 1x1 kernel; layers with at most 14 outputs run ``dense_narrow.h``.
float32 and float64 run the same SIMD code, compiled once per element type, so a float64
gradient check tests the code that trains.
Results do not depend on ``n_threads``: rows are independent in forward and dX, and dW sums fixed
chunks of ``DW_CHUNK`` rows separately, then adds the chunk sums along the fixed binary tree of
``_sum_parts`` (which makes them independent of how many processes share a batch, too), as they
come, block by block (``_tree_part``, ``_tree_add``): the scratch holds a few partial sums per
thread, not one per chunk of the batch.
"""
from cython cimport floating
from cython.parallel cimport parallel, prange, threadid
from libc.stdlib cimport free
from libc.string cimport memset

include "cpu.pxi"
include "scratch.pxi"
include "conv_passes.pxi"

cdef extern from "dense_narrow.h" nogil:
    ctypedef struct fcnn_narrow_job_f32:
        const float *x
        const float *wt
        const float *bias
        const float *dy
        float *out
        float *dx
        float *dwt
        float *stack
        int n, k, kp, o, relu
    ctypedef struct fcnn_narrow_job_f64:
        const double *x
        const double *wt
        const double *bias
        const double *dy
        double *out
        double *dx
        double *dwt
        double *stack
        int n, k, kp, o, relu
    enum:
        FCNN_NARROW_FWD
        FCNN_NARROW_DX
    int fcnn_narrow(int o)
    int fcnn_narrow_rows(int o)
    int fcnn_narrow_kp(int k)
    int fcnn_narrow_stack_levels(int n)
    int fcnn_narrow_dw_range(int kp, int o, int n_threads)
    void fcnn_narrow_pass_f32(int level, int which, const fcnn_narrow_job_f32 *jb, int a, int b)
    void fcnn_narrow_pass_f64(int level, int which, const fcnn_narrow_job_f64 *jb, int a, int b)
    void fcnn_narrow_pack_f32(const float *w, int k, int o, int kp, int i0, int i1, float *wt)
    void fcnn_narrow_pack_f64(const double *w, int k, int o, int kp, int i0, int i1, double *wt)
    void fcnn_narrow_dw_f32(int level, const fcnn_narrow_job_f32 *jb, float *dw, int a, int b)
    void fcnn_narrow_dw_f64(int level, const fcnn_narrow_job_f64 *jb, double *dw, int a, int b)
    void fcnn_narrow_db_f32(const float *dy, int n, int o, float *db)
    void fcnn_narrow_db_f64(const double *dy, int n, int o, double *db)

# Rows per dW partial sum. Fixed, so that the summation order depends neither on n_threads nor
# on where a batch is cut into the shares of several processes (fastcnn.distributed cuts at
# multiples of it).
cdef enum:
    DW_CHUNK = FCNN_ROWS_PER_PARTIAL

SAMPLES_PER_PARTIAL = DW_CHUNK

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
    _forward(x__nk, w__ko, bias, out__no, relu, max(1, n_threads))


def dense_backward_input(const floating[:, ::1] dy__no,  # IN  (n, out)
                         const floating[:, ::1] w__ko,   # IN  (in, out)
                         floating[:, ::1] dx__nk,        # OUT (n, in)
                         int n_threads):
    """dx = dy @ w.T."""
    _check("dy", (dy__no.shape[1],), (w__ko.shape[1],))
    _check("dx", (dx__nk.shape[0], dx__nk.shape[1]), (dy__no.shape[0], w__ko.shape[0]))
    if dx__nk.size == 0:
        return
    _backward_input(dy__no, w__ko, dx__nk, max(1, n_threads))


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
    _backward_weight(x__nk, dy__no, dw__ko, db, max(1, n_threads))


# ---- the passes, for float32 and float64 ----------------------------------------------------

cdef int _forward(const floating[:, ::1] x, const floating[:, ::1] w,
                  const floating[::1] bias, floating[:, ::1] out, bint relu,
                  int n_threads) except -1:
    cdef int n = x.shape[0], k = x.shape[1], o = w.shape[1]
    if fcnn_narrow(o):
        return _narrow(FCNN_NARROW_FWD, x, w, &bias[0] if bias is not None else NULL, out, relu,
                       n_threads)
    cdef int level = fcnn_simd_level(), cb = fcnn_block(level, o, sizeof(floating))
    cdef size_t nw = fcnn_packed_size(k, o, cb), nb = fcnn_packed_size(1, o, cb)
    cdef Py_ssize_t rows = _block_rows(n, n_threads), blk, r0
    cdef floating *buf = <floating *>_alloc(nw + nb, sizeof(floating))
    cdef floating *bp = NULL
    cdef const floating *px = &x[0, 0]
    cdef floating *po = &out[0, 0]
    cdef fcnn_geom g
    _pack_cols(&w[0, 0], k, o, o, 1, cb, buf)
    if bias is not None:
        bp = buf + nw
        _pack_cols(&bias[0], 1, o, 0, 1, cb, bp)
    for blk in prange((n + rows - 1) // rows, nogil=True, schedule="static",
                      num_threads=n_threads):
        r0 = blk * rows
        g = _rows(min(rows, n - r0), k, o)
        # a 1x1, stride-1, unpadded convolution never touches its canvas argument
        _forward_image(level, &g, buf, bp, relu, px + r0 * k, po + r0 * o, buf)
    free(buf)
    return 0


cdef int _backward_input(const floating[:, ::1] dy, const floating[:, ::1] w,
                         floating[:, ::1] dx, int n_threads) except -1:
    # dx = dy . w^T: the forward kernel with w^T (out, in) packed as the weights.
    cdef int n = dy.shape[0], k = w.shape[0], o = w.shape[1]
    if fcnn_narrow(o):
        return _narrow(FCNN_NARROW_DX, dy, w, <const floating *>NULL, dx, False, n_threads)
    cdef int level = fcnn_simd_level(), cb = fcnn_block(level, k, sizeof(floating))
    cdef Py_ssize_t rows = _block_rows(n, n_threads), blk, r0
    cdef floating *buf = <floating *>_alloc(fcnn_packed_size(o, k, cb), sizeof(floating))
    cdef const floating *pdy = &dy[0, 0]
    cdef floating *pdx = &dx[0, 0]
    cdef fcnn_geom g
    _pack_cols(&w[0, 0], o, k, 1, o, cb, buf)
    for blk in prange((n + rows - 1) // rows, nogil=True, schedule="static",
                      num_threads=n_threads):
        r0 = blk * rows
        g = _rows(min(rows, n - r0), o, k)
        _forward_image(level, &g, buf, <floating *>NULL, 0, pdy + r0 * o, pdx + r0 * k, buf)
    free(buf)
    return 0


cdef int _backward_weight(const floating[:, ::1] x, const floating[:, ::1] dy,
                          floating[:, ::1] dw, floating[::1] db, int n_threads) except -1:
    # Partial sums: per chunk, dw rows padded to c16 channels, then one db row, in the scratch of
    # a fcnn_tree (pack.h); each thread's own scratch after it. Threads take the blocks one at a
    # time: they are few, and a core may run slower a while.
    cdef int level = fcnn_simd_level(), n = x.shape[0], k = x.shape[1], o = dy.shape[1]
    if fcnn_narrow(o):
        return _narrow_backward_weight(x, dy, dw, db, n_threads)
    cdef int c16 = fcnn_round16(o)
    cdef Py_ssize_t b, c, r0, j
    cdef fcnn_geom g = _rows(DW_CHUNK, k, o)
    cdef size_t step = (<size_t>k + 1) * c16, per = fcnn_dw_scratch_size(&g)
    cdef fcnn_tree t = fcnn_tree_plan((n + DW_CHUNK - 1) // DW_CHUNK, n_threads, step)
    cdef size_t sums = fcnn_tree_size(&t, n_threads)
    cdef floating *buf = <floating *>_alloc(sums + n_threads * per, sizeof(floating))
    cdef floating *scratch = NULL
    cdef floating *part
    cdef const floating *px = &x[0, 0]
    cdef const floating *pdy = &dy[0, 0]
    cdef floating *pdw = &dw[0, 0]
    cdef bint has_db = db is not None
    cdef int me
    with nogil, parallel(num_threads=n_threads):
        me = threadid()
        scratch = buf + sums + me * per
        for b in prange(t.blocks, schedule="dynamic"):
            for c in range(fcnn_tree_first(&t, b), fcnn_tree_end(&t, b)):
                part = _tree_part(&t, buf, me, c)
                r0 = c * DW_CHUNK
                g = _rows(min(DW_CHUNK, n - r0), k, o)
                _dw_image(level, &g, px + r0 * k, pdy + r0 * o, part,
                          part + k * c16 if has_db else NULL, scratch)
                _tree_add(&t, buf, me, c)
    for j in prange(k, nogil=True, schedule="static", num_threads=n_threads):
        _sum_parts(buf + j * c16, t.blocks, step, o, pdw + j * o)
    if has_db:
        _sum_parts(buf + k * c16, t.blocks, step, o, &db[0])
    free(buf)
    return 0


cdef int _narrow(int which, const floating[:, ::1] a, const floating[:, ::1] w,
                 const floating *bias, floating[:, ::1] out, bint relu,
                 int n_threads) except -1:
    # forward: a = x (n, k), out (n, o), bias or NULL; dX: a = dy (n, o), out = dx (n, k). w is
    # (k, o).
    cdef int n = a.shape[0], k = w.shape[0], o = w.shape[1]
    cdef int level = fcnn_simd_level(), kp = fcnn_narrow_kp(k)
    cdef Py_ssize_t per = (n + n_threads - 1) // n_threads, cols = kp // n_threads + 1, c, blk
    cdef floating *wt = <floating *>_alloc(<size_t>fcnn_narrow_rows(o) * kp, sizeof(floating))
    cdef const floating *pw = &w[0, 0]
    cdef const floating *pa = &a[0, 0]
    cdef floating *pout = &out[0, 0]
    cdef bint fwd = which == FCNN_NARROW_FWD
    cdef fcnn_narrow_job_f32 jb32
    cdef fcnn_narrow_job_f64 jb64
    memset(&jb32, 0, sizeof(jb32))
    memset(&jb64, 0, sizeof(jb64))
    # the same fields in the job of the element type
    if floating is float:
        jb32.wt, jb32.n, jb32.k, jb32.kp, jb32.o, jb32.relu = wt, n, k, kp, o, relu
        if fwd:
            jb32.x, jb32.out, jb32.bias = pa, pout, bias
        else:
            jb32.dy, jb32.dx = pa, pout
    else:
        jb64.wt, jb64.n, jb64.k, jb64.kp, jb64.o, jb64.relu = wt, n, k, kp, o, relu
        if fwd:
            jb64.x, jb64.out, jb64.bias = pa, pout, bias
        else:
            jb64.dy, jb64.dx = pa, pout
    per += per % 2  # whole row pairs per thread
    with nogil, parallel(num_threads=n_threads):
        for c in prange(n_threads, schedule="static"):
            if floating is float:
                fcnn_narrow_pack_f32(pw, k, o, kp, c * cols, min(kp, c * cols + cols), wt)
            else:
                fcnn_narrow_pack_f64(pw, k, o, kp, c * cols, min(kp, c * cols + cols), wt)
        for blk in prange((n + per - 1) // per, schedule="static"):
            if floating is float:
                fcnn_narrow_pass_f32(level, which, &jb32, blk * per, min(n, blk * per + per))
            else:
                fcnn_narrow_pass_f64(level, which, &jb64, blk * per, min(n, blk * per + per))
    free(wt)
    return 0


cdef int _narrow_backward_weight(const floating[:, ::1] x, const floating[:, ::1] dy,
                                 floating[:, ::1] dw, floating[::1] db, int n_threads) except -1:
    cdef int n = x.shape[0], k = x.shape[1], o = dy.shape[1]
    cdef int level = fcnn_simd_level(), kp = fcnn_narrow_kp(k)
    cdef int span = fcnn_narrow_dw_range(kp, o, n_threads)
    cdef Py_ssize_t i
    cdef size_t block = <size_t>fcnn_narrow_rows(o) * kp
    cdef floating *dwt = <floating *>_alloc(block * fcnn_narrow_stack_levels(n), sizeof(floating))
    cdef floating *pdw = &dw[0, 0]
    cdef fcnn_narrow_job_f32 jb32
    cdef fcnn_narrow_job_f64 jb64
    memset(&jb32, 0, sizeof(jb32))
    memset(&jb64, 0, sizeof(jb64))
    # the same fields in the job of the element type
    if floating is float:
        jb32.x, jb32.dy, jb32.dwt, jb32.stack = &x[0, 0], &dy[0, 0], dwt, dwt + block
        jb32.n, jb32.k, jb32.kp, jb32.o = n, k, kp, o
    else:
        jb64.x, jb64.dy, jb64.dwt, jb64.stack = &x[0, 0], &dy[0, 0], dwt, dwt + block
        jb64.n, jb64.k, jb64.kp, jb64.o = n, k, kp, o
    for i in prange((kp + span - 1) // span, nogil=True, schedule="static",
                    num_threads=n_threads):
        if floating is float:
            fcnn_narrow_dw_f32(level, &jb32, pdw, i * span, min(kp, i * span + span))
        else:
            fcnn_narrow_dw_f64(level, &jb64, pdw, i * span, min(kp, i * span + span))
    if db is not None:
        if floating is float:
            fcnn_narrow_db_f32(&dy[0, 0], n, o, &db[0])
        else:
            fcnn_narrow_db_f64(&dy[0, 0], n, o, &db[0])
    free(dwt)
    return 0
