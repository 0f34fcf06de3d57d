"""Batch normalisation of an (M, C) matrix per column, with the activation that follows it and
an optional residual added before that activation: forward (training and inference) and
backward side by side.

Callers view NHWC activations as (N*H*W, C) and dense activations as (N, C), so each channel is
a column. The passes run over fixed chunks of rows: with ``partial__k2c`` of shape (K, 2, C),
chunk k covers rows [k*R, (k+1)*R) where R = ceil(M / K), and each chunk's column statistics go
to its own ``partial[k]``, combined afterwards in chunk order. The result depends on K, which the
caller derives from the shape, but never on ``n_threads``. Statistics accumulate in double.

The forward computes y = act((x - mean) * scale + beta [+ residual]) with per-channel scale =
gamma * inv_std, act relu capped at ``relu_max`` (inf: no cap) or the identity; ``inv_std`` is
1 / sqrt(variance + epsilon), the variance the biased one, as in Keras. The backward recomputes
the relu's mask from x (and the residual) with the forward's own arithmetic (normalization.h),
so the forward's output need not be kept.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport sqrt
from libc.stdlib cimport free, malloc

include "_threads.pxi"
include "cpu.pxi"


cdef extern from "normalization.h" nogil:
    void fcnn_bn_moments_f32(const float *x, Py_ssize_t rows, Py_ssize_t c, double *mean,
                             double *m2)
    void fcnn_bn_moments_f64(const double *x, Py_ssize_t rows, Py_ssize_t c, double *mean,
                             double *m2)
    void fcnn_bn_apply_f32(const float *x, const float *res, Py_ssize_t rows, Py_ssize_t c,
                           const float *mean, const float *scale, const float *beta, int relu,
                           float cap, float *y)
    void fcnn_bn_apply_f64(const double *x, const double *res, Py_ssize_t rows, Py_ssize_t c,
                           const double *mean, const double *scale, const double *beta,
                           int relu, double cap, double *y)
    void fcnn_bn_grad_sums_f32(const float *x, const float *dy, const float *dy2, const float *res,
                               Py_ssize_t rows, Py_ssize_t c, const float *mean,
                               const float *inv_std, const float *scale, const float *beta,
                               int relu, float cap, float *g_out, double *sum_g, double *sum_gx)
    void fcnn_bn_grad_sums_f64(const double *x, const double *dy, const double *dy2,
                               const double *res, Py_ssize_t rows, Py_ssize_t c, const double *mean,
                               const double *inv_std, const double *scale, const double *beta,
                               int relu, double cap, double *g_out, double *sum_g,
                               double *sum_gx)
    void fcnn_bn_grad_input_f32(const float *x, const float *dy, const float *g_in,
                                Py_ssize_t rows, Py_ssize_t c, const float *mean,
                                const float *inv_std, const float *scale, const float *beta,
                                const float *gamma, const double *mean_g, const double *mean_gx,
                                int relu, float cap, float *dx)
    void fcnn_bn_grad_input_f64(const double *x, const double *dy, const double *g_in,
                                Py_ssize_t rows, Py_ssize_t c, const double *mean,
                                const double *inv_std, const double *scale, const double *beta,
                                const double *gamma, const double *mean_g,
                                const double *mean_gx, int relu, double cap,
                                double *dx)


# One name per pass for both float types (the C functions have one per type).
cdef inline void _moments(const floating *x, Py_ssize_t rows, Py_ssize_t c, double *mean,
                          double *m2) noexcept nogil:
    if floating is float:
        fcnn_bn_moments_f32(x, rows, c, mean, m2)
    else:
        fcnn_bn_moments_f64(x, rows, c, mean, m2)


cdef inline void _apply_rows(const floating *x, const floating *res, Py_ssize_t rows,
                             Py_ssize_t c, const floating *mean, const floating *scale,
                             const floating *beta, int relu, floating cap,
                             floating *y) noexcept nogil:
    if floating is float:
        fcnn_bn_apply_f32(x, res, rows, c, mean, scale, beta, relu, cap, y)
    else:
        fcnn_bn_apply_f64(x, res, rows, c, mean, scale, beta, relu, cap, y)


cdef inline void _grad_sums(const floating *x, const floating *dy, const floating *dy2,
                            const floating *res, Py_ssize_t rows, Py_ssize_t c,
                            const floating *mean, const floating *inv_std, const floating *scale,
                            const floating *beta, int relu, floating cap, floating *g_out,
                            double *sum_g, double *sum_gx) noexcept nogil:
    if floating is float:
        fcnn_bn_grad_sums_f32(x, dy, dy2, res, rows, c, mean, inv_std, scale, beta, relu, cap,
                              g_out, sum_g, sum_gx)
    else:
        fcnn_bn_grad_sums_f64(x, dy, dy2, res, rows, c, mean, inv_std, scale, beta, relu, cap,
                              g_out, sum_g, sum_gx)


cdef inline void _grad_input(const floating *x, const floating *dy, const floating *g_in,
                             Py_ssize_t rows, Py_ssize_t c, const floating *mean,
                             const floating *inv_std, const floating *scale,
                             const floating *beta, const floating *gamma, const double *mean_g,
                             const double *mean_gx, int relu, floating cap,
                             floating *dx) noexcept nogil:
    if floating is float:
        fcnn_bn_grad_input_f32(x, dy, g_in, rows, c, mean, inv_std, scale, beta, gamma, mean_g,
                               mean_gx, relu, cap, dx)
    else:
        fcnn_bn_grad_input_f64(x, dy, g_in, rows, c, mean, inv_std, scale, beta, gamma, mean_g,
                               mean_gx, relu, cap, dx)


cdef enum:
    BLOCK = 8192  # values per chunk of rows where no partial operand fixes the chunks


cdef int _check(Py_ssize_t m, Py_ssize_t c, const Py_ssize_t *y_shape, Py_ssize_t n_channels,
                const Py_ssize_t *partial_shape) except -1:
    """Raise unless the shapes agree; past this point the kernels run without bounds checks."""
    if m < 1 or y_shape[0] != m or y_shape[1] != c or n_channels != c:
        raise ValueError(f"inconsistent batch normalisation: x ({m}, {c}), output "
                         f"({y_shape[0]}, {y_shape[1]}), per-channel arrays of {n_channels}")
    if partial_shape != NULL and (partial_shape[0] < 1 or partial_shape[1] != 2
                                  or partial_shape[2] != c):
        raise ValueError(f"partial must have shape (K >= 1, 2, {c}), received "
                         f"({partial_shape[0]}, {partial_shape[1]}, {partial_shape[2]})")
    return 0


cdef inline const floating *_row(const floating[:, ::1] a, Py_ssize_t r) noexcept nogil:
    """Row r of a (r = M for the start of an empty chunk), or NULL for an operand not given."""
    return &a[0, 0] + r * a.shape[1] if a is not None else NULL


cdef inline floating *_out_row(floating[:, ::1] a, Py_ssize_t r) noexcept nogil:
    return &a[0, 0] + r * a.shape[1] if a is not None else NULL


cdef floating *_scale(const floating[::1] gamma, const floating[::1] inv_std) except NULL:
    """A new array of scale = gamma * inv_std per channel, rounded once from double; the
    forward and backward kernels both make it here, so that the backward's recomputed relu mask
    sees the forward's values."""
    cdef Py_ssize_t c = gamma.shape[0], j
    cdef floating *scale = <floating *>malloc(max(c, 1) * sizeof(floating))
    if scale == NULL:
        raise MemoryError()
    for j in range(c):
        scale[j] = <floating>(<double>gamma[j] * inv_std[j])
    return scale


cdef void _apply(const floating[:, ::1] x__mc, const floating[:, ::1] res__mc,
                 const floating[::1] center, const floating *scale, const floating[::1] beta,
                 bint relu, floating cap, floating[:, ::1] y__mc, Py_ssize_t rows,
                 int n_threads) noexcept nogil:
    """y = act((x - center) * scale + beta [+ res]) in blocks of ``rows`` rows, one block per
    parallel step."""
    cdef Py_ssize_t m = x__mc.shape[0], c = x__mc.shape[1], k, r0
    cdef Py_ssize_t n_blocks = (m + rows - 1) // rows
    for k in prange(n_blocks, schedule="static", num_threads=threads_for(m * c, n_threads)):
        r0 = k * rows
        _apply_rows(_row(x__mc, r0), _row(res__mc, r0), min(rows, m - r0), c, &center[0], scale,
                    &beta[0], relu, cap, _out_row(y__mc, r0))


cdef int _check_like(const floating[:, ::1] a, Py_ssize_t m, Py_ssize_t c, str name) except -1:
    if a is not None and (a.shape[0] != m or a.shape[1] != c):
        raise ValueError(f"inconsistent batch normalisation: x ({m}, {c}), {name} "
                         f"({a.shape[0]}, {a.shape[1]})")
    return 0


def batchnorm_forward_training(const floating[:, ::1] x__mc,        # IN  (M, C)
                               const floating[:, ::1] residual__mc, # IN  (M, C), or None
                               const floating[::1] gamma,           # IN  (C,)
                               const floating[::1] beta,            # IN  (C,)
                               floating[::1] moving_mean,           # IN/OUT (C,)
                               floating[::1] moving_var,            # IN/OUT (C,)
                               floating[:, ::1] y__mc,              # OUT (M, C)
                               floating[::1] mean,                  # OUT (C,) batch mean
                               floating[::1] inv_std,               # OUT (C,)
                               double[:, :, ::1] partial__k2c,      # OUT scratch (K, 2, C)
                               double momentum, double epsilon, bint relu, double relu_max,
                               int n_threads):
    """y = act((x - mean) * inv_std * gamma + beta [+ residual]) with the batch's statistics,
    which also move the moving ones: moving = moving * momentum + batch * (1 - momentum).

    One read of x gives the statistics: each chunk's mean and sum of squared deviations from it
    (two loops over the chunk while it is in cache), combined in chunk order with the
    parallel-variance formula, which stays accurate when the mean is large against the spread.
    """
    cdef Py_ssize_t m = x__mc.shape[0], c = x__mc.shape[1]
    _check(m, c, y__mc.shape, min(gamma.shape[0], beta.shape[0], moving_mean.shape[0],
                                  moving_var.shape[0], mean.shape[0], inv_std.shape[0]),
           partial__k2c.shape)
    _check_like(residual__mc, m, c, "residual")
    cdef Py_ssize_t n_chunks = partial__k2c.shape[0], rows = (m + n_chunks - 1) // n_chunks
    cdef Py_ssize_t k, j, r0, n_k
    cdef double total, variance, d
    cdef floating *scale
    with nogil:
        for k in prange(n_chunks, schedule="static", num_threads=threads_for(m * c, n_threads)):
            r0 = min(k * rows, m)
            _moments(_row(x__mc, r0), min(rows, m - r0), c, &partial__k2c[k, 0, 0],
                     &partial__k2c[k, 1, 0])
        for j in range(c):
            total = 0
            for k in range(n_chunks):
                total += partial__k2c[k, 0, j] * max(0, min(rows, m - k * rows))
            mean[j] = total / m
            variance = 0
            for k in range(n_chunks):
                n_k = max(0, min(rows, m - k * rows))
                d = partial__k2c[k, 0, j] - total / m
                variance += partial__k2c[k, 1, j] + n_k * d * d
            variance /= m
            inv_std[j] = 1 / sqrt(variance + epsilon)
            moving_mean[j] = moving_mean[j] * momentum + (total / m) * (1 - momentum)
            moving_var[j] = moving_var[j] * momentum + variance * (1 - momentum)
    scale = _scale(gamma, inv_std)
    with nogil:
        _apply(x__mc, residual__mc, mean, scale, beta, relu, <floating>relu_max, y__mc, rows,
               n_threads)
    free(scale)


def batchnorm_forward_inference(const floating[:, ::1] x__mc,        # IN  (M, C)
                                const floating[:, ::1] residual__mc, # IN  (M, C), or None
                                const floating[::1] gamma,           # IN  (C,)
                                const floating[::1] beta,            # IN  (C,)
                                const floating[::1] moving_mean,     # IN  (C,)
                                const floating[::1] moving_var,      # IN  (C,)
                                floating[:, ::1] y__mc,              # OUT (M, C)
                                floating[::1] inv_std,               # OUT (C,)
                                double epsilon, bint relu, double relu_max, int n_threads):
    """y = act((x - moving_mean) * inv_std * gamma + beta [+ residual]), inv_std from the moving
    variance."""
    cdef Py_ssize_t m = x__mc.shape[0], c = x__mc.shape[1], j
    _check(m, c, y__mc.shape, min(gamma.shape[0], beta.shape[0], moving_mean.shape[0],
                                  moving_var.shape[0], inv_std.shape[0]), NULL)
    _check_like(residual__mc, m, c, "residual")
    cdef floating *scale
    for j in range(c):
        inv_std[j] = 1 / sqrt(<double>moving_var[j] + epsilon)
    scale = _scale(gamma, inv_std)
    with nogil:
        _apply(x__mc, residual__mc, moving_mean, scale, beta, relu, <floating>relu_max, y__mc,
               max(1, BLOCK // c), n_threads)
    free(scale)


def batchnorm_backward(const floating[:, ::1] x__mc,        # IN  (M, C)
                       const floating[:, ::1] dy__mc,       # IN  (M, C) the gradient of y
                       const floating[:, ::1] dy2__mc,      # IN  (M, C) a second part, or None
                       const floating[:, ::1] residual__mc, # IN  (M, C) the forward's, or None
                       const floating[::1] gamma,           # IN  (C,)
                       const floating[::1] beta,            # IN  (C,)
                       const floating[::1] mean,            # IN  (C,) the forward's centre
                       const floating[::1] inv_std,         # IN  (C,) the forward's inv_std
                       floating[:, ::1] dx__mc,             # OUT (M, C), or None to skip it
                       floating[::1] dgamma,                # OUT (C,)
                       floating[::1] dbeta,                 # OUT (C,)
                       floating[:, ::1] dres__mc,           # OUT (M, C) residual's, or None
                       double[:, :, ::1] partial__k2c,      # OUT scratch (K, 2, C)
                       bint relu, double relu_max, bint batch_stats, int n_threads):
    """With g = dy (+ dy2: the gradient of y in two parts, added here as the engine would
    add them), or with relu that masked where the forward's pre-activation value was not in
    (0, relu_max), and xhat = (x - mean) * inv_std: dbeta = sum(g), dgamma = sum(g * xhat) over rows,
    dres = g (the residual's gradient), and

    - batch_stats (the forward used the batch's statistics, which depend on x):
      dx = gamma * inv_std * (g - dbeta / M - xhat * dgamma / M);
    - otherwise (moving statistics, constants): dx = gamma * inv_std * g.
    """
    cdef Py_ssize_t m = x__mc.shape[0], c = x__mc.shape[1]
    _check(m, c, dy__mc.shape, min(gamma.shape[0], beta.shape[0], mean.shape[0],
                                   inv_std.shape[0], dgamma.shape[0], dbeta.shape[0]),
           partial__k2c.shape)
    _check_like(dy2__mc, m, c, "dy2")
    _check_like(residual__mc, m, c, "residual")
    _check_like(dx__mc, m, c, "dx")
    _check_like(dres__mc, m, c, "dres")
    cdef Py_ssize_t n_chunks = partial__k2c.shape[0], rows = (m + n_chunks - 1) // n_chunks
    cdef Py_ssize_t k, j, r0
    cdef int threads = threads_for(m * c, n_threads)
    cdef bint want_dx = dx__mc is not None
    cdef double sum_g, sum_gx
    # g goes to dres when asked for; the dx pass reads it back where it cannot make it from dy
    # alone (the mask needs the residual, or dy comes in two parts), from dx, which that pass
    # then overwrites in place.
    cdef floating[:, ::1] g_out = dres__mc
    if g_out is None and want_dx and (relu and residual__mc is not None or dy2__mc is not None):
        g_out = dx__mc
    cdef floating *scale = _scale(gamma, inv_std)
    cdef floating cap = <floating>relu_max
    with nogil:
        for k in prange(n_chunks, schedule="static", num_threads=threads):
            r0 = min(k * rows, m)
            _grad_sums(_row(x__mc, r0), _row(dy__mc, r0), _row(dy2__mc, r0),
                       _row(residual__mc, r0), min(rows, m - r0), c, &mean[0], &inv_std[0], scale, &beta[0], relu,
                       cap, _out_row(g_out, r0), &partial__k2c[k, 0, 0], &partial__k2c[k, 1, 0])
        for j in range(c):
            sum_g = 0
            sum_gx = 0
            for k in range(n_chunks):
                sum_g += partial__k2c[k, 0, j]
                sum_gx += partial__k2c[k, 1, j]
            dbeta[j] = sum_g
            dgamma[j] = sum_gx
            # The double totals, kept per channel (chunk 0 is spent) for the dx pass below.
            partial__k2c[0, 0, j] = sum_g / m if batch_stats else 0
            partial__k2c[0, 1, j] = sum_gx / m if batch_stats else 0
        if want_dx:
            for k in prange(n_chunks, schedule="static", num_threads=threads):
                r0 = min(k * rows, m)
                _grad_input(_row(x__mc, r0), _row(dy__mc, r0), _row(g_out, r0),
                            min(rows, m - r0), c, &mean[0], &inv_std[0], scale, &beta[0],
                            &gamma[0], &partial__k2c[0, 0, 0], &partial__k2c[0, 1, 0], relu,
                            cap, _out_row(dx__mc, r0))
    free(scale)


def batchnorm_fold(const floating[:, ::1] kernel__kc,          # IN  (K, C) a kernel's columns
                   const floating[::1] bias,                  # IN  (C,), or None for zeros
                   const floating[::1] gamma,                 # IN  (C,)
                   const floating[::1] beta,                  # IN  (C,)
                   const floating[::1] moving_mean,           # IN  (C,)
                   const floating[::1] moving_var,            # IN  (C,)
                   floating[:, ::1] out_kernel__kc,           # OUT (K, C)
                   floating[::1] out_bias,                    # OUT (C,)
                   double epsilon, int n_threads):
    """The kernel and bias of a linear layer followed by inference-mode batch normalisation of
    its C outputs, as one linear layer: with s = gamma / sqrt(moving_var + epsilon) per output,
    kernel * s and (bias - moving_mean) * s + beta (s and the bias in double)."""
    cdef Py_ssize_t k = kernel__kc.shape[0], c = kernel__kc.shape[1], r, j
    _check(k, c, out_kernel__kc.shape, min(gamma.shape[0], beta.shape[0], moving_mean.shape[0],
                                           moving_var.shape[0], out_bias.shape[0]), NULL)
    if bias is not None and bias.shape[0] != c:
        raise ValueError(f"inconsistent batch normalisation fold: kernel of {c} outputs, bias "
                         f"of {bias.shape[0]}")
    cdef double s
    cdef floating *scale = <floating *>malloc(max(c, 1) * sizeof(floating))
    if scale == NULL:
        raise MemoryError()
    with nogil:
        for j in range(c):
            s = gamma[j] / sqrt(<double>moving_var[j] + epsilon)
            scale[j] = <floating>s
            out_bias[j] = <floating>(((bias[j] if bias is not None else 0) - <double>moving_mean[j])
                                     * s + beta[j])
        for r in prange(k, schedule="static", num_threads=threads_for(k * c, n_threads)):
            for j in range(c):
                out_kernel__kc[r, j] = kernel__kc[r, j] * scale[j]
    free(scale)
