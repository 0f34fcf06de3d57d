"""Batch normalisation of an (M, C) matrix per column: forward (training and inference) and
backward side by side.

Callers view NHWC activations as (N*H*W, C) and dense activations as (N, C), so each channel is
a column. Column sums run over fixed chunks of rows: with ``partial__k2c`` of shape (K, 2, C),
chunk k covers rows [k*R, (k+1)*R) where R = ceil(M / K), each chunk sums into its own
``partial[k]``, and the chunk sums are then added in chunk order. The result depends on K,
which the caller derives from the shape, but never on ``n_threads``. Sums accumulate in double.

``inv_std`` is 1 / sqrt(variance + epsilon); the variance is the biased one, as in Keras.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport sqrt

include "_threads.pxi"


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


cdef double _fold(double[:, :, ::1] partial__k2c, int slot, Py_ssize_t channel) noexcept nogil:
    """The column total of one channel: the chunk sums added in chunk order."""
    cdef double total = 0
    cdef Py_ssize_t k
    for k in range(partial__k2c.shape[0]):
        total += partial__k2c[k, slot, channel]
    return total


cdef void _normalize(const floating[:, ::1] x__mc, const floating[::1] center,
                     const floating[::1] inv_std, const floating[::1] gamma,
                     const floating[::1] beta, floating[:, ::1] y__mc,
                     int n_threads) noexcept nogil:
    cdef Py_ssize_t m = x__mc.shape[0], c = x__mc.shape[1], r, j
    for r in prange(m, schedule="static", num_threads=threads_for(m * c, n_threads)):
        for j in range(c):
            y__mc[r, j] = (x__mc[r, j] - center[j]) * inv_std[j] * gamma[j] + beta[j]


def batchnorm_forward_training(const floating[:, ::1] x__mc,        # IN  (M, C)
                               const floating[::1] gamma,           # IN  (C,)
                               const floating[::1] beta,            # IN  (C,)
                               floating[::1] moving_mean,           # IN/OUT (C,)
                               floating[::1] moving_var,            # IN/OUT (C,)
                               floating[:, ::1] y__mc,              # OUT (M, C)
                               floating[::1] mean,                  # OUT (C,) batch mean
                               floating[::1] inv_std,               # OUT (C,)
                               double[:, :, ::1] partial__k2c,      # OUT scratch (K, 2, C)
                               double momentum, double epsilon, int n_threads):
    """y = (x - mean) * inv_std * gamma + beta with the batch's statistics, which also move the
    moving ones: moving = moving * momentum + batch * (1 - momentum).

    The variance is a second pass over the deviations from the mean, which stays accurate when
    the mean is large against the spread.
    """
    cdef Py_ssize_t m = x__mc.shape[0], c = x__mc.shape[1]
    _check(m, c, y__mc.shape, min(gamma.shape[0], beta.shape[0], moving_mean.shape[0],
                                  moving_var.shape[0], mean.shape[0], inv_std.shape[0]),
           partial__k2c.shape)
    cdef Py_ssize_t n_chunks = partial__k2c.shape[0], rows = (m + n_chunks - 1) // n_chunks
    cdef Py_ssize_t k, r, j
    cdef int threads = threads_for(m * c, n_threads)
    cdef double total, variance, d
    with nogil:
        for k in prange(n_chunks, schedule="static", num_threads=threads):
            for j in range(c):
                partial__k2c[k, 0, j] = 0
            for r in range(k * rows, min((k + 1) * rows, m)):
                for j in range(c):
                    partial__k2c[k, 0, j] += x__mc[r, j]
        for j in range(c):
            mean[j] = _fold(partial__k2c, 0, j) / m

        for k in prange(n_chunks, schedule="static", num_threads=threads):
            for j in range(c):
                partial__k2c[k, 1, j] = 0
            for r in range(k * rows, min((k + 1) * rows, m)):
                for j in range(c):
                    d = <double>x__mc[r, j] - mean[j]
                    partial__k2c[k, 1, j] += d * d
        for j in range(c):
            variance = _fold(partial__k2c, 1, j) / m
            inv_std[j] = 1 / sqrt(variance + epsilon)
            moving_mean[j] = moving_mean[j] * momentum + mean[j] * (1 - momentum)
            moving_var[j] = moving_var[j] * momentum + variance * (1 - momentum)

        _normalize(x__mc, mean, inv_std, gamma, beta, y__mc, n_threads)


def batchnorm_forward_inference(const floating[:, ::1] x__mc,        # IN  (M, C)
                                const floating[::1] gamma,           # IN  (C,)
                                const floating[::1] beta,            # IN  (C,)
                                const floating[::1] moving_mean,     # IN  (C,)
                                const floating[::1] moving_var,      # IN  (C,)
                                floating[:, ::1] y__mc,              # OUT (M, C)
                                floating[::1] inv_std,               # OUT (C,)
                                double epsilon, int n_threads):
    """y = (x - moving_mean) * inv_std * gamma + beta, inv_std from the moving variance."""
    cdef Py_ssize_t m = x__mc.shape[0], c = x__mc.shape[1], j
    _check(m, c, y__mc.shape, min(gamma.shape[0], beta.shape[0], moving_mean.shape[0],
                                  moving_var.shape[0], inv_std.shape[0]), NULL)
    with nogil:
        for j in range(c):
            inv_std[j] = 1 / sqrt(<double>moving_var[j] + epsilon)
        _normalize(x__mc, moving_mean, inv_std, gamma, beta, y__mc, n_threads)


def batchnorm_backward(const floating[:, ::1] x__mc,        # IN  (M, C)
                       const floating[:, ::1] dy__mc,       # IN  (M, C)
                       const floating[::1] gamma,           # IN  (C,)
                       const floating[::1] mean,            # IN  (C,) the forward's centre
                       const floating[::1] inv_std,         # IN  (C,) the forward's inv_std
                       floating[:, ::1] dx__mc,             # OUT (M, C), or None to skip it
                       floating[::1] dgamma,                # OUT (C,)
                       floating[::1] dbeta,                 # OUT (C,)
                       double[:, :, ::1] partial__k2c,      # OUT scratch (K, 2, C)
                       bint batch_stats, int n_threads):
    """With xhat = (x - mean) * inv_std: dbeta = sum(dy), dgamma = sum(dy * xhat) over rows, and

    - batch_stats (the forward used the batch's statistics, which depend on x):
      dx = gamma * inv_std * (dy - dbeta / M - xhat * dgamma / M);
    - otherwise (moving statistics, constants): dx = gamma * inv_std * dy.
    """
    cdef Py_ssize_t m = x__mc.shape[0], c = x__mc.shape[1]
    _check(m, c, dy__mc.shape, min(gamma.shape[0], mean.shape[0], inv_std.shape[0],
                                   dgamma.shape[0], dbeta.shape[0]), partial__k2c.shape)
    if dx__mc is not None:
        _check(m, c, dx__mc.shape, c, NULL)
    cdef Py_ssize_t n_chunks = partial__k2c.shape[0], rows = (m + n_chunks - 1) // n_chunks
    cdef Py_ssize_t k, r, j
    cdef int threads = threads_for(m * c, n_threads)
    cdef bint want_dx = dx__mc is not None
    cdef double xhat, sum_dy, sum_dy_xhat
    with nogil:
        for k in prange(n_chunks, schedule="static", num_threads=threads):
            for j in range(c):
                partial__k2c[k, 0, j] = 0
                partial__k2c[k, 1, j] = 0
            for r in range(k * rows, min((k + 1) * rows, m)):
                for j in range(c):
                    xhat = (<double>x__mc[r, j] - mean[j]) * inv_std[j]
                    partial__k2c[k, 0, j] += dy__mc[r, j]
                    partial__k2c[k, 1, j] += dy__mc[r, j] * xhat
        for j in range(c):
            sum_dy = _fold(partial__k2c, 0, j)
            sum_dy_xhat = _fold(partial__k2c, 1, j)
            dbeta[j] = sum_dy
            dgamma[j] = sum_dy_xhat
            # The double totals, kept per channel (chunk 0 is spent) for the dx pass below.
            partial__k2c[0, 0, j] = sum_dy / m if batch_stats else 0
            partial__k2c[0, 1, j] = sum_dy_xhat / m if batch_stats else 0
        if want_dx:
            for r in prange(m, schedule="static", num_threads=threads):
                for j in range(c):
                    xhat = (<double>x__mc[r, j] - mean[j]) * inv_std[j]
                    dx__mc[r, j] = gamma[j] * inv_std[j] * (
                        dy__mc[r, j] - partial__k2c[0, 0, j] - xhat * partial__k2c[0, 1, j])
