"""Depthwise 2-D convolution kernels: forward, dX and dW side by side.

Layouts: activations NHWC, weights ``(kh, kw, c, dm)`` (Keras's depthwise kernel), output
channel ``ch * dm + m`` from input channel ``ch`` and weight ``w[.., ch, m]``. Strides, dilation
rates and ``pad_top``/``pad_left`` are given; the output's spatial shape fixes the rest, and
cells a window reaches outside the input count as zeros. Every ``# OUT`` buffer is overwritten.

float32 and float64 run the same SIMD code of ``depthwise.h`` (AVX-512, AVX2 or the baseline
ISA, chosen at import), compiled once per element type.

Results do not depend on ``n_threads``: forward rows and dX rows are each computed by one thread,
a forward's batch normalisation moments (``moments__k2c``) chunk by chunk with the function of
normalization.pyx's own pass, and dW sums the output rows of the batch in the fixed chunks of
``partial__kp`` (K chunks of ceil(rows / K) rows; the caller derives K from the shapes), then
adds the chunk sums in chunk order. Threads take rows and chunks one at a time ("dynamic"): on a
shared host one core often runs behind the other, and fixed halves would leave the faster one
waiting.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.stdlib cimport malloc

include "cpu.pxi"
include "_threads.pxi"
include "bn_passes.pxi"

cdef extern from "depthwise.h" nogil:
    ctypedef struct fcnn_dwise_geom:
        int h, w, c, dm, oh, ow, kh, kw, sh, sw, rh, rw, pt, pl
    void fcnn_dwise_forward_row_f32(int level, const fcnn_dwise_geom *g, const float *x,
                                    const float *w, const float *bias, int relu, int i,
                                    float *out)
    void fcnn_dwise_forward_row_f64(int level, const fcnn_dwise_geom *g, const double *x,
                                    const double *w, const double *bias, int relu, int i,
                                    double *out)
    void fcnn_dwise_dx_row_f32(int level, const fcnn_dwise_geom *g, const float *dy,
                               const float *w, int r, float *dx)
    void fcnn_dwise_dx_row_f64(int level, const fcnn_dwise_geom *g, const double *dy,
                               const double *w, int r, double *dx)
    void fcnn_dwise_dw_rows_f32(int level, const fcnn_dwise_geom *g, const float *x,
                                const float *dy, Py_ssize_t r0, Py_ssize_t r1, float *part_w,
                                float *part_b)
    void fcnn_dwise_dw_rows_f64(int level, const fcnn_dwise_geom *g, const double *x,
                                const double *dy, Py_ssize_t r0, Py_ssize_t r1, double *part_w,
                                double *part_b)

cdef extern from "pack.h" nogil:
    void fcnn_sum_parts_f32(float *parts, int nparts, size_t step, int n, float *out)
    void fcnn_sum_parts_f64(double *parts, int nparts, size_t step, int n, double *out)


cdef inline void _sum_parts(floating *parts, int nparts, size_t step, int n,
                            floating *out) noexcept nogil:
    if floating is float:
        fcnn_sum_parts_f32(parts, nparts, step, n, out)
    else:
        fcnn_sum_parts_f64(parts, nparts, step, n, out)


cdef inline void _forward_row(int level, const fcnn_dwise_geom *g, const floating *x,
                              const floating *w, const floating *bias, int relu, int i,
                              floating *out) noexcept nogil:
    if floating is float:
        fcnn_dwise_forward_row_f32(level, g, x, w, bias, relu, i, out)
    else:
        fcnn_dwise_forward_row_f64(level, g, x, w, bias, relu, i, out)


cdef inline void _dx_row(int level, const fcnn_dwise_geom *g, const floating *dy,
                         const floating *w, int r, floating *dx) noexcept nogil:
    if floating is float:
        fcnn_dwise_dx_row_f32(level, g, dy, w, r, dx)
    else:
        fcnn_dwise_dx_row_f64(level, g, dy, w, r, dx)


cdef inline void _dw_rows(int level, const fcnn_dwise_geom *g, const floating *x,
                          const floating *dy, Py_ssize_t r0, Py_ssize_t r1, floating *part_w,
                          floating *part_b) noexcept nogil:
    if floating is float:
        fcnn_dwise_dw_rows_f32(level, g, x, dy, r0, r1, part_w, part_b)
    else:
        fcnn_dwise_dw_rows_f64(level, g, x, dy, r0, r1, part_w, part_b)


cdef fcnn_dwise_geom _geom(const Py_ssize_t *xs, const Py_ssize_t *ws, const Py_ssize_t *os,
                           int stride_h, int stride_w, int dilation_h, int dilation_w,
                           int pad_top, int pad_left) except *:
    """The geometry from the input, weight and output shapes; raises if they disagree."""
    cdef fcnn_dwise_geom g
    g.h, g.w, g.c = xs[1], xs[2], xs[3]
    g.kh, g.kw, g.dm = ws[0], ws[1], ws[3]
    g.oh, g.ow = os[1], os[2]
    g.sh, g.sw, g.rh, g.rw, g.pt, g.pl = (stride_h, stride_w, dilation_h, dilation_w, pad_top,
                                          pad_left)
    if (xs[0] != os[0] or ws[2] != g.c or os[3] != g.c * g.dm or stride_h < 1 or stride_w < 1
            or dilation_h < 1 or dilation_w < 1 or pad_top < 0 or pad_left < 0 or g.kh < 1
            or g.kw < 1 or g.dm < 1):
        raise ValueError(
            f"inconsistent depthwise convolution: input {[xs[k] for k in range(4)]}, weights "
            f"{[ws[k] for k in range(4)]}, output {[os[k] for k in range(4)]}, strides "
            f"{(stride_h, stride_w)}, dilation {(dilation_h, dilation_w)}, pads "
            f"{(pad_top, pad_left)}")
    return g


def depthwise_forward(const floating[:, :, :, ::1] x__nhwc,  # IN  (n, h, w, c)
                      const floating[:, :, :, ::1] w__hwcm,  # IN  (kh, kw, c, dm)
                      const floating[::1] bias,              # IN  (c*dm,) or None
                      floating[:, :, :, ::1] out__nhwc,      # OUT (n, oh, ow, c*dm)
                      int stride_h, int stride_w, int dilation_h, int dilation_w,
                      int pad_top, int pad_left, int relu, int n_threads,
                      double[:, :, ::1] moments__k2c=None,   # OUT (K, 2, c*dm), or None
                      Py_ssize_t chunk_rows=1):
    """out = relu?(depthwise_conv(x, w) + bias), all NHWC; relu 0 (none), 1 (relu) or 2 (relu6):
    out[n, y, x, ch*dm + m] = bias[ch*dm + m] + sum_{i, j} w[i, j, ch, m]
    * x[n, y*stride_h + i*dilation_h - pad_top, x*stride_w + j*dilation_w - pad_left, ch],
    with cells outside x counted as zeros.

    With ``moments__k2c``: viewing out as (n*oh*ow, c*dm) rows in chunks of ``chunk_rows`` (a
    multiple or a divisor of oh*ow), each chunk's per-channel mean and sum of squared deviations
    from it go to moments[k, 0] and moments[k, 1], as conv.conv2d_forward's do: the partial
    sums of ``normalization.batchnorm_forward_training``, computed as each chunk's last image is
    done, while it is in cache."""
    cdef fcnn_dwise_geom g = _geom(x__nhwc.shape, w__hwcm.shape, out__nhwc.shape, stride_h,
                                   stride_w, dilation_h, dilation_w, pad_top, pad_left)
    if bias is not None and bias.shape[0] != g.c * g.dm:
        raise ValueError(f"bias has {bias.shape[0]} entries, expected {g.c * g.dm}")
    cdef Py_ssize_t pixels = <Py_ssize_t>g.oh * g.ow, co = g.c * g.dm
    cdef Py_ssize_t total = out__nhwc.shape[0] * pixels, n_chunks = 0
    if moments__k2c is not None:
        if chunk_rows < 1 or pixels == 0 or (chunk_rows % pixels and pixels % chunk_rows):
            raise ValueError(f"Expected chunk_rows to be a multiple or a divisor of the "
                             f"{pixels} pixels of an output image, received {chunk_rows}")
        n_chunks = (total + chunk_rows - 1) // chunk_rows
        if (moments__k2c.shape[0] != n_chunks or moments__k2c.shape[1] != 2
                or moments__k2c.shape[2] != co):
            raise ValueError(f"Expected moments of shape ({n_chunks}, 2, {co}), received "
                             f"({moments__k2c.shape[0]}, {moments__k2c.shape[1]}, "
                             f"{moments__k2c.shape[2]})")
    if out__nhwc.size == 0:
        return
    cdef int level = fcnn_simd_level()
    cdef Py_ssize_t rows = out__nhwc.shape[0] * g.oh, q, n, u, k
    cdef int threads = threads_for(rows * g.ow * g.c * g.dm * g.kh * g.kw, n_threads)
    cdef size_t image = <size_t>g.h * g.w * g.c
    cdef const floating *xp = &x__nhwc[0, 0, 0, 0] if g.h * g.w else NULL
    cdef const floating *bp = &bias[0] if bias is not None else NULL
    cdef floating *po = &out__nhwc[0, 0, 0, 0]
    cdef double *moments = &moments__k2c[0, 0, 0] if n_chunks else NULL
    # With moments, a step takes the images of whole chunks (or one image of several chunks),
    # then sums those chunks' moments while the images are in cache.
    cdef Py_ssize_t unit = max(1, chunk_rows // pixels), count = out__nhwc.shape[0]
    with nogil:
        if moments != NULL:
            for u in prange((count + unit - 1) // unit, schedule="dynamic", num_threads=threads):
                for q in range(u * unit * g.oh, min(u * unit + unit, count) * g.oh):
                    n = q // g.oh
                    _forward_row(level, &g, xp + n * image, &w__hwcm[0, 0, 0, 0], bp, relu,
                                 q - n * g.oh, po + q * g.ow * co)
                for k in range(u * unit * pixels // chunk_rows,
                               (min(u * unit + unit, count) * pixels + chunk_rows - 1)
                               // chunk_rows):
                    _moments(po + k * chunk_rows * co, min(chunk_rows, total - k * chunk_rows),
                             co, moments + k * 2 * co, moments + (k * 2 + 1) * co)
        else:
            for q in prange(rows, schedule="dynamic", num_threads=threads):
                n = q // g.oh
                _forward_row(level, &g, xp + n * image, &w__hwcm[0, 0, 0, 0], bp, relu,
                             q - n * g.oh, po + q * g.ow * co)


def depthwise_backward_input(const floating[:, :, :, ::1] dy__nhwc,  # IN  (n, oh, ow, c*dm)
                             const floating[:, :, :, ::1] w__hwcm,   # IN  (kh, kw, c, dm)
                             floating[:, :, :, ::1] dx__nhwc,        # OUT (n, h, w, c)
                             int stride_h, int stride_w, int dilation_h, int dilation_w,
                             int pad_top, int pad_left, int n_threads):
    """dx = d(sum(dy * depthwise_conv(x, w))) / dx: each input pixel gathers the dy of the
    windows that read it, so every dx row is written by one thread."""
    cdef fcnn_dwise_geom g = _geom(dx__nhwc.shape, w__hwcm.shape, dy__nhwc.shape, stride_h,
                                   stride_w, dilation_h, dilation_w, pad_top, pad_left)
    if dx__nhwc.size == 0:
        return
    if dy__nhwc.size == 0:
        dx__nhwc[...] = 0
        return
    cdef int level = fcnn_simd_level()
    cdef Py_ssize_t rows = dx__nhwc.shape[0] * g.h, q, n
    cdef int threads = threads_for(dx__nhwc.shape[0] * g.oh * g.ow * g.c * g.dm * g.kh * g.kw,
                                   n_threads)
    cdef size_t image = <size_t>g.oh * g.ow * g.c * g.dm
    with nogil:
        for q in prange(rows, schedule="dynamic", num_threads=threads):
            n = q // g.h
            _dx_row(level, &g, &dy__nhwc[0, 0, 0, 0] + n * image, &w__hwcm[0, 0, 0, 0],
                    q - n * g.h, &dx__nhwc[n, q - n * g.h, 0, 0])


def depthwise_backward_weight(const floating[:, :, :, ::1] x__nhwc,   # IN  (n, h, w, c)
                              const floating[:, :, :, ::1] dy__nhwc,  # IN  (n, oh, ow, c*dm)
                              floating[:, :, :, ::1] dw__hwcm,        # OUT (kh, kw, c, dm)
                              floating[::1] db,                       # OUT (c*dm,) or None
                              floating[:, ::1] partial__kp,           # OUT scratch (K, P)
                              int stride_h, int stride_w, int dilation_h, int dilation_w,
                              int pad_top, int pad_left, int n_threads):
    """dw[i, j, ch, m] = sum_{n, y, x} dy[n, y, x, ch*dm + m]
    * x[n, y*stride_h + i*dilation_h - pad_top, x*stride_w + j*dilation_w - pad_left, ch] and
    db[k] = sum_{n, y, x} dy[n, y, x, k]; both overwritten. ``partial__kp`` holds one chunk's
    sums per row, P = kh*kw*c*dm + c*dm (dW, then db)."""
    cdef fcnn_dwise_geom g = _geom(x__nhwc.shape, dw__hwcm.shape, dy__nhwc.shape, stride_h,
                                   stride_w, dilation_h, dilation_w, pad_top, pad_left)
    cdef Py_ssize_t co = g.c * g.dm, size_w = g.kh * g.kw * co, n_chunks = partial__kp.shape[0]
    if db is not None and db.shape[0] != co:
        raise ValueError(f"db has {db.shape[0]} entries, expected {co}")
    if n_chunks < 1 or partial__kp.shape[1] != size_w + co:
        raise ValueError(f"partial must have shape (K >= 1, {size_w + co}), received "
                         f"({partial__kp.shape[0]}, {partial__kp.shape[1]})")
    if co == 0:
        return
    cdef int level = fcnn_simd_level()
    cdef Py_ssize_t rows = dy__nhwc.shape[0] * g.oh, per = (rows + n_chunks - 1) // n_chunks
    cdef Py_ssize_t k, r, t, runs_w = runs_of(size_w), runs_b = runs_of(co) if db is not None else 0
    cdef int threads = threads_for(rows * g.ow * co * g.kh * g.kw, n_threads)
    cdef int sum_threads = threads_for((size_w + co) * n_chunks, n_threads)
    cdef floating *part = &partial__kp[0, 0]
    cdef const floating *xp = &x__nhwc[0, 0, 0, 0] if rows and g.h * g.w else NULL
    cdef const floating *dyp = &dy__nhwc[0, 0, 0, 0] if rows else NULL
    cdef floating *dwp = &dw__hwcm[0, 0, 0, 0]
    cdef floating *dbp = &db[0] if db is not None else NULL
    with nogil:
        for k in prange(n_chunks, schedule="dynamic", num_threads=threads):
            _dw_rows(level, &g, xp, dyp, min(k * per, rows), min((k + 1) * per, rows),
                     part + k * (size_w + co), part + k * (size_w + co) + size_w if dbp else NULL)
        # the chunk sums along the tree of _sum_parts, RUN values of dW (then of db) per step
        for r in prange(runs_w + runs_b, schedule="static", num_threads=sum_threads):
            if r < runs_w:
                t = r * RUN
                _sum_parts(part + t, n_chunks, size_w + co, min(RUN, size_w - t), dwp + t)
            else:
                t = (r - runs_w) * RUN
                _sum_parts(part + size_w + t, n_chunks, size_w + co, min(RUN, co - t), dbp + t)
