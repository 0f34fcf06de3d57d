"""Batch normalisation of an (M, C) matrix per column, with the activation that follows it and
an optional residual added before that activation: forward (training and inference) and
backward side by side.

Callers view NHWC activations as (N*H*W, C) and dense activations as (N, C), so each channel is
a column. The passes run over fixed chunks of ``chunk_rows`` rows (the last may be shorter):
with ``partial__k2c`` of shape (K, 2, C), K = ceil(M / chunk_rows), each chunk's column
statistics go to its own ``partial[k]``, and the chunks' sums add along the fixed binary tree of
``fcnn_sum_parts`` (pack.h). The result depends on chunk_rows, which the caller derives from the
shape, but never on ``n_threads``. Statistics accumulate in double.

Synchronized batch normalisation (several processes, each with a share of one batch): the
training kernels take ``across``, None or a callable that replaces a 1-D float64 array, in
place, by its total over the processes: this process's per-channel sums followed by its number
of rows (0: no share, and then x has no row). The forward calls it twice, on C + 1 values (the
sums of x, then of the squared deviations from the whole batch's mean), the backward once, on
2C + 1 (the sums of g and of g * xhat). A process whose share is a whole subtree of chunks of
the whole batch's tree, added to the others' along the tree's top, gets the bits of one process
running the whole batch.

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
from cython.view cimport array as cvarray

include "_threads.pxi"
include "cpu.pxi"
include "bn_passes.pxi"


cdef extern from "pack.h" nogil:
    void fcnn_sum_parts_f64(double *parts, int nparts, size_t step, int n, double *out)


cdef enum:
    BLOCK = 8192  # values per chunk of rows where no partial operand fixes the chunks


cdef int _check(Py_ssize_t m, Py_ssize_t c, const Py_ssize_t *y_shape, Py_ssize_t n_channels,
                const Py_ssize_t *partial_shape) except -1:
    """Raise unless the shapes agree; past this point the kernels run without bounds checks. M
    may be 0 for the training kernels (those with partial sums: see _check_chunks)."""
    cdef Py_ssize_t least = 0 if partial_shape != NULL else 1
    if m < least or y_shape[0] != m or y_shape[1] != c or n_channels != c:
        raise ValueError(f"inconsistent batch normalisation: x ({m}, {c}), output "
                         f"({y_shape[0]}, {y_shape[1]}), per-channel arrays of {n_channels}")
    if partial_shape != NULL and (partial_shape[1] != 2 or partial_shape[2] != c):
        raise ValueError(f"partial must have shape (K, 2, {c}), received "
                         f"({partial_shape[0]}, {partial_shape[1]}, {partial_shape[2]})")
    return 0


cdef int _check_chunks(Py_ssize_t m, Py_ssize_t n_chunks, Py_ssize_t chunk_rows,
                       across) except -1:
    """Raise unless the partial sums' chunks fit x's M rows, M >= 1 unless across is given."""
    if chunk_rows < 1 or n_chunks != (m + chunk_rows - 1) // chunk_rows:
        raise ValueError(f"partial must have ceil(M / chunk_rows) chunks: M = {m}, "
                         f"chunk_rows = {chunk_rows}, received {n_chunks} chunks")
    if n_chunks > 0x7fffffff:
        raise ValueError(f"Expected at most 2**31 - 1 chunks, received {n_chunks}")
    if across is not None and not callable(across):
        raise TypeError(f"Expected across to be None or callable, received {across!r}")
    if m == 0 and across is None:
        raise ValueError("Expected x with at least one row: only a process's share of a batch "
                         "(with across) may be empty")
    return 0


cdef double[::1] _sums(Py_ssize_t n):
    """A new float64 array of n values, an object that ``across`` can read and write (the
    buffer protocol)."""
    return cvarray(shape=(n,), itemsize=sizeof(double), format="d")


cdef void _tree_sum(double *parts, Py_ssize_t n_parts, Py_ssize_t step, Py_ssize_t n,
                    double *out) noexcept nogil:
    """out = the sum of n_parts parts along fcnn_sum_parts's tree (zeros for none)."""
    cdef Py_ssize_t j
    if n_parts == 0:
        for j in range(n):
            out[j] = 0
    else:
        fcnn_sum_parts_f64(parts, <int>n_parts, step, <int>n, out)


cdef inline const floating *_row(const floating[:, ::1] a, Py_ssize_t r) noexcept nogil:
    """Row r of a, or NULL for an operand not given."""
    return &a[0, 0] + r * a.shape[1] if a is not None else NULL


cdef inline floating *_out_row(floating[:, ::1] a, Py_ssize_t r) noexcept nogil:
    return &a[0, 0] + r * a.shape[1] if a is not None else NULL


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
                               floating[:, ::1] y__mc,              # OUT (M, C), or None
                               floating[::1] mean,                  # OUT (C,) batch mean
                               floating[::1] inv_std,               # OUT (C,)
                               double[:, :, ::1] partial__k2c,      # IN/OUT (K, 2, C)
                               Py_ssize_t chunk_rows, bint moments_given, object across,
                               double momentum, double epsilon, bint relu, double relu_max,
                               int n_threads):
    """y = act((x - mean) * inv_std * gamma + beta [+ residual]) with the batch's statistics,
    which also move the moving ones: moving = moving * momentum + batch * (1 - momentum).

    One read of x gives the statistics: each chunk's mean and sum of squared deviations from it
    (two loops over the chunk while it is in cache). The batch's mean is the tree sum of the
    chunks' sums over the rows; its variance the tree sum of each chunk's squared deviations
    from that mean (the chunk's own plus rows * (chunk mean - mean)^2: the parallel-variance
    formula, which stays accurate when the mean is large against the spread) over the rows.
    With ``across`` (see the module) both sums and the rows are the whole batch's.

    ``moments_given``: partial already holds each chunk's mean and squared deviations (the conv
    that made x summed them as it wrote x: ``conv.conv2d_forward``'s moments, by the same
    function), so x is read once, to normalise. With y None, the statistics alone: a conv
    reading y normalises x as it loads it (``conv.conv2d_forward``'s ``in_*``).
    """
    cdef Py_ssize_t m = x__mc.shape[0], c = x__mc.shape[1]
    cdef const Py_ssize_t *y_shape = x__mc.shape
    if y__mc is not None:
        y_shape = y__mc.shape
    _check(m, c, y_shape, min(gamma.shape[0], beta.shape[0], moving_mean.shape[0],
                              moving_var.shape[0], mean.shape[0], inv_std.shape[0]),
           partial__k2c.shape)
    _check_like(residual__mc, m, c, "residual")
    cdef Py_ssize_t n_chunks = partial__k2c.shape[0], rows = chunk_rows
    _check_chunks(m, n_chunks, rows, across)
    cdef Py_ssize_t k, j, r0, n_k
    cdef double variance, d, rows_all
    # [sums of x, rows | sums of squared deviations, rows]: what ``across`` totals.
    cdef double[::1] sums = _sums(2 * c + 2)
    cdef double *deviations = &sums[c + 1]
    cdef double *leaves = <double *>malloc(max(n_chunks * c, 1) * sizeof(double))
    cdef floating *scale = NULL
    if leaves == NULL:
        raise MemoryError()
    try:
        with nogil:
            for k in prange(0 if moments_given else n_chunks, schedule="static",
                            num_threads=threads_for(m * c, n_threads)):
                r0 = k * rows
                _moments(_row(x__mc, r0), min(rows, m - r0), c, &partial__k2c[k, 0, 0],
                         &partial__k2c[k, 1, 0])
            for k in range(n_chunks):
                n_k = min(rows, m - k * rows)
                for j in range(c):
                    leaves[k * c + j] = partial__k2c[k, 0, j] * n_k
            _tree_sum(leaves, n_chunks, c, c, &sums[0])
        sums[c] = m
        if across is not None:
            across(sums[:c + 1])
        rows_all = sums[c]
        with nogil:
            for k in range(n_chunks):
                n_k = min(rows, m - k * rows)
                for j in range(c):
                    d = partial__k2c[k, 0, j] - sums[j] / rows_all
                    leaves[k * c + j] = partial__k2c[k, 1, j] + n_k * d * d
            _tree_sum(leaves, n_chunks, c, c, deviations)
        deviations[c] = m
        if across is not None:
            across(sums[c + 1:])
        for j in range(c):
            mean[j] = sums[j] / rows_all
            variance = deviations[j] / rows_all
            inv_std[j] = 1 / sqrt(variance + epsilon)
            moving_mean[j] = moving_mean[j] * momentum + (sums[j] / rows_all) * (1 - momentum)
            moving_var[j] = moving_var[j] * momentum + variance * (1 - momentum)
        if y__mc is not None:
            scale = _scale(gamma, inv_std)
            with nogil:
                _apply(x__mc, residual__mc, mean, scale, beta, relu, <floating>relu_max, y__mc,
                       rows, n_threads)
    finally:
        free(leaves)
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


def batchnorm_apply(const floating[:, ::1] x__mc,        # IN  (M, C)
                    const floating[:, ::1] residual__mc, # IN  (M, C), or None
                    const floating[::1] gamma,           # IN  (C,)
                    const floating[::1] beta,            # IN  (C,)
                    const floating[::1] mean,            # IN  (C,) a forward's centre
                    const floating[::1] inv_std,         # IN  (C,) that forward's inv_std
                    floating[:, ::1] y__mc,              # OUT (M, C)
                    bint relu, double relu_max, int n_threads):
    """y = act((x - mean) * inv_std * gamma + beta [+ residual]) with the mean and inv_std a
    forward kernel returned: that forward's output again, bit for bit (the same scale and
    per-row pass), for a backward pass that recomputes an output rather than keeping it."""
    cdef Py_ssize_t m = x__mc.shape[0], c = x__mc.shape[1]
    _check(m, c, y__mc.shape, min(gamma.shape[0], beta.shape[0], mean.shape[0],
                                  inv_std.shape[0]), NULL)
    _check_like(residual__mc, m, c, "residual")
    cdef floating *scale = _scale(gamma, inv_std)
    with nogil:
        _apply(x__mc, residual__mc, mean, scale, beta, relu, <floating>relu_max, y__mc,
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
                       Py_ssize_t chunk_rows, object across,
                       bint relu, double relu_max, bint batch_stats, int n_threads,
                       double[:, ::1] grad_means__2c=None,  # OUT (2, C), or None
                       bint sums_given=False):
    """With g = dy (+ dy2: the gradient of y in two parts, added here as the engine would
    add them), or with relu that masked where the forward's pre-activation value was not in
    (0, relu_max), and xhat = (x - mean) * inv_std: dbeta = sum(g), dgamma = sum(g * xhat) over rows,
    dres = g (the residual's gradient), and

    - batch_stats (the forward used the batch's statistics, which depend on x):
      dx = gamma * inv_std * (g - dbeta / M - xhat * dgamma / M);
    - otherwise (moving statistics, constants): dx = gamma * inv_std * g.

    With ``across`` (see the module) the sums, dbeta and dgamma included, and M are the whole
    batch's. ``grad_means__2c`` receives dbeta / M and dgamma / M in double (0 without
    batch_stats), the means dx is made with, for a conv backward to make dx itself from dy as it
    reads it (conv2d_backward), with dx None here.

    ``sums_given``: partial already holds each chunk's two sums (the conv that read y summed
    them as it wrote dy: ``conv.conv2d_backward``'s ``in_partial``, by the same function), so
    dy is not read for them; dres must then be None, and g be dy alone.
    """
    cdef Py_ssize_t m = x__mc.shape[0], c = x__mc.shape[1]
    _check(m, c, dy__mc.shape, min(gamma.shape[0], beta.shape[0], mean.shape[0],
                                   inv_std.shape[0], dgamma.shape[0], dbeta.shape[0]),
           partial__k2c.shape)
    _check_like(dy2__mc, m, c, "dy2")
    _check_like(residual__mc, m, c, "residual")
    _check_like(dx__mc, m, c, "dx")
    _check_like(dres__mc, m, c, "dres")
    if grad_means__2c is not None and (grad_means__2c.shape[0] != 2
                                       or grad_means__2c.shape[1] != c):
        raise ValueError(f"grad_means has shape ({grad_means__2c.shape[0]}, "
                         f"{grad_means__2c.shape[1]}), expected (2, {c})")
    cdef Py_ssize_t n_chunks = partial__k2c.shape[0], rows = chunk_rows
    _check_chunks(m, n_chunks, rows, across)
    cdef Py_ssize_t k, j, r0
    cdef double rows_all
    cdef int threads = threads_for(m * c, n_threads)
    cdef bint want_dx = dx__mc is not None
    # g goes to dres when asked for; the dx pass reads it back where it cannot make it from dy
    # alone (the mask needs the residual, or dy comes in two parts), from dx, which that pass
    # then overwrites in place.
    cdef floating[:, ::1] g_out = dres__mc
    if g_out is None and want_dx and (relu and residual__mc is not None or dy2__mc is not None):
        g_out = dx__mc
    if sums_given and g_out is not None:
        raise ValueError("Expected sums_given with neither dres nor a gradient that the dx pass "
                         "needs from the sums pass (a residual under the relu, or dy2)")
    # [sums of g, sums of g * xhat, rows]: what ``across`` totals.
    cdef double[::1] sums = _sums(2 * c + 1)
    cdef floating *scale = _scale(gamma, inv_std)
    cdef floating cap = <floating>relu_max
    try:
        with nogil:
            for k in prange(0 if sums_given else n_chunks, schedule="static",
                            num_threads=threads):
                r0 = k * rows
                _grad_sums(_row(x__mc, r0), _row(dy__mc, r0), _row(dy2__mc, r0),
                           _row(residual__mc, r0), min(rows, m - r0), c, &mean[0], &inv_std[0],
                           scale, &beta[0], relu, cap, _out_row(g_out, r0),
                           &partial__k2c[k, 0, 0], &partial__k2c[k, 1, 0])
            # Both sums of a chunk are one part of 2C values, so one pass adds both trees.
            _tree_sum(&partial__k2c[0, 0, 0] if n_chunks else NULL, n_chunks, 2 * c, 2 * c,
                      &sums[0])
        sums[2 * c] = m
        if across is not None:
            across(sums)
        rows_all = sums[2 * c]
        with nogil:
            for j in range(c):
                dbeta[j] = sums[j]
                dgamma[j] = sums[c + j]
                # The double means, kept per channel for the dx pass below.
                sums[j] = sums[j] / rows_all if batch_stats else 0
                sums[c + j] = sums[c + j] / rows_all if batch_stats else 0
                if grad_means__2c is not None:
                    grad_means__2c[0, j] = sums[j]
                    grad_means__2c[1, j] = sums[c + j]
            if want_dx:
                for k in prange(n_chunks, schedule="static", num_threads=threads):
                    r0 = k * rows
                    _grad_input(_row(x__mc, r0), _row(dy__mc, r0), _row(g_out, r0),
                                min(rows, m - r0), c, &mean[0], &inv_std[0], scale, &beta[0],
                                &gamma[0], &sums[0], &sums[c], relu, cap,
                                _out_row(dx__mc, r0))
    finally:
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
