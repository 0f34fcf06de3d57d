"""Layer and group normalisation: statistics per sample (not per batch), forward beside backward.

Layer normalisation views its input as rows ``x__rk`` (R, K): each row is one sample's set of
normalised values (callers move the normalised axes last), with its own mean and biased
variance; gamma and beta have one value per column. Group normalisation views NHWC activations
as ``x__nsc`` (N, S, C), S the spatial positions, with C channels in G groups of C / G adjacent
channels; each (sample, group) has its own statistics over its S * C / G values, and gamma and
beta have one value per channel.

Every statistic is a sum accumulated in double in a fixed order, by one thread: rows, or
samples, are split between threads, never the values of one sum. The per-column sums of the
backward pass (dgamma and dbeta) go through ``partial`` scratch whose shape the caller derives
from the input's shape, never from ``n_threads``. ``inv_std`` is 1 / sqrt(variance + epsilon).
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport sqrt

include "_threads.pxi"


cdef int _check_rows(Py_ssize_t r, Py_ssize_t k, const Py_ssize_t *other, Py_ssize_t n_columns,
                     Py_ssize_t n_rows) except -1:
    """Raise unless the shapes agree; past this point the kernels run without bounds checks."""
    if r < 1 or k < 1 or other[0] != r or other[1] != k or n_columns != k or n_rows != r:
        raise ValueError(f"inconsistent layer normalisation: x ({r}, {k}), another operand "
                         f"({other[0]}, {other[1]}), per-column arrays of {n_columns}, per-row "
                         f"arrays of {n_rows}")
    return 0


cdef void _row_moments(const floating *x, Py_ssize_t k, double epsilon, floating *mean,
                       floating *inv_std) noexcept nogil:
    """The mean and 1 / sqrt(biased variance + epsilon) of x[0:k]; the variance is a second
    pass over the deviations, accurate when the mean is large against the spread."""
    cdef double total = 0, d
    cdef Py_ssize_t j
    for j in range(k):
        total += x[j]
    mean[0] = total / k
    total = 0
    for j in range(k):
        d = <double>x[j] - mean[0]
        total += d * d
    inv_std[0] = 1 / sqrt(total / k + epsilon)


cdef void _fold(double[:, :, ::1] partial, floating[::1] dgamma,
                floating[::1] dbeta) noexcept nogil:
    """dbeta[j] and dgamma[j]: the sums partial[p, 0, j] and partial[p, 1, j] added in the order
    of p."""
    cdef double total_dy, total_dy_xhat
    cdef Py_ssize_t p, j
    for j in range(partial.shape[2]):
        total_dy = 0
        total_dy_xhat = 0
        for p in range(partial.shape[0]):
            total_dy = total_dy + partial[p, 0, j]
            total_dy_xhat = total_dy_xhat + partial[p, 1, j]
        dbeta[j] = total_dy
        dgamma[j] = total_dy_xhat


def layernorm_forward(const floating[:, ::1] x__rk,     # IN  (R, K)
                      const floating[::1] gamma,        # IN  (K,)
                      const floating[::1] beta,         # IN  (K,)
                      floating[:, ::1] y__rk,           # OUT (R, K)
                      floating[::1] mean,               # OUT (R,)
                      floating[::1] inv_std,            # OUT (R,)
                      double epsilon, int n_threads):
    """y = (x - mean) * inv_std * gamma + beta, mean and inv_std those of each row."""
    cdef Py_ssize_t r = x__rk.shape[0], k = x__rk.shape[1], i, j
    _check_rows(r, k, y__rk.shape, min(gamma.shape[0], beta.shape[0]),
                min(mean.shape[0], inv_std.shape[0]))
    cdef floating m, s
    with nogil:
        for i in prange(r, schedule="static", num_threads=threads_for(r * k, n_threads)):
            _row_moments(&x__rk[i, 0], k, epsilon, &mean[i], &inv_std[i])
            m = mean[i]
            s = inv_std[i]
            for j in range(k):
                y__rk[i, j] = (x__rk[i, j] - m) * s * gamma[j] + beta[j]


def layernorm_backward(const floating[:, ::1] x__rk,        # IN  (R, K)
                       const floating[:, ::1] dy__rk,       # IN  (R, K)
                       const floating[::1] gamma,           # IN  (K,)
                       const floating[::1] mean,            # IN  (R,) the forward's
                       const floating[::1] inv_std,         # IN  (R,) the forward's
                       floating[:, ::1] dx__rk,             # OUT (R, K), or None to skip it
                       floating[::1] dgamma,                # OUT (K,)
                       floating[::1] dbeta,                 # OUT (K,)
                       double[:, :, ::1] partial__k2c,      # OUT scratch (P, 2, K)
                       int n_threads):
    """With xhat = (x - mean) * inv_std and g = dy * gamma: dbeta = sum(dy) and dgamma =
    sum(dy * xhat) over the rows, and in each row of K values

        dx = inv_std * (g - sum(g) / K - xhat * sum(g * xhat) / K).

    The column sums run over P fixed chunks of ceil(R / P) rows, each into its own
    ``partial[p]``; the chunk sums are then added in chunk order.
    """
    cdef Py_ssize_t r = x__rk.shape[0], k = x__rk.shape[1]
    _check_rows(r, k, dy__rk.shape, min(gamma.shape[0], dgamma.shape[0], dbeta.shape[0]),
                min(mean.shape[0], inv_std.shape[0]))
    if dx__rk is not None:
        _check_rows(r, k, dx__rk.shape, k, r)
    if partial__k2c.shape[0] < 1 or partial__k2c.shape[1] != 2 or partial__k2c.shape[2] != k:
        raise ValueError(f"partial must have shape (P >= 1, 2, {k}), received "
                         f"{tuple(partial__k2c.shape)[:3]}")
    cdef Py_ssize_t n_chunks = partial__k2c.shape[0], rows = (r + n_chunks - 1) // n_chunks
    cdef Py_ssize_t p, i, j
    cdef bint want_dx = dx__rk is not None
    cdef double xhat, sum_g, sum_g_xhat
    with nogil:
        for p in prange(n_chunks, schedule="static", num_threads=threads_for(r * k, n_threads)):
            for j in range(k):
                partial__k2c[p, 0, j] = 0
                partial__k2c[p, 1, j] = 0
            for i in range(p * rows, min((p + 1) * rows, r)):
                sum_g = 0
                sum_g_xhat = 0
                for j in range(k):
                    xhat = (<double>x__rk[i, j] - mean[i]) * inv_std[i]
                    partial__k2c[p, 0, j] += dy__rk[i, j]
                    partial__k2c[p, 1, j] += dy__rk[i, j] * xhat
                    sum_g = sum_g + <double>dy__rk[i, j] * gamma[j]
                    sum_g_xhat = sum_g_xhat + <double>dy__rk[i, j] * gamma[j] * xhat
                if want_dx:
                    sum_g = sum_g / k
                    sum_g_xhat = sum_g_xhat / k
                    for j in range(k):
                        xhat = (<double>x__rk[i, j] - mean[i]) * inv_std[i]
                        dx__rk[i, j] = inv_std[i] * (<double>dy__rk[i, j] * gamma[j] - sum_g
                                                     - xhat * sum_g_xhat)
        _fold(partial__k2c, dgamma, dbeta)


cdef int _check_groups(const Py_ssize_t *x_shape, const Py_ssize_t *other, Py_ssize_t groups,
                       Py_ssize_t n_channels, Py_ssize_t n_samples,
                       const Py_ssize_t *partial_shape) except -1:
    cdef Py_ssize_t n = x_shape[0], s = x_shape[1], c = x_shape[2]
    if (n < 1 or s < 1 or c < 1 or groups < 1 or c % groups != 0 or other[0] != n
            or other[1] != s or other[2] != c or n_channels != c or n_samples != n):
        raise ValueError(f"inconsistent group normalisation: x ({n}, {s}, {c}) in {groups} "
                         f"groups, another operand ({other[0]}, {other[1]}, {other[2]}), "
                         f"per-channel arrays of {n_channels}, per-sample arrays of {n_samples}")
    if partial_shape[0] != n or partial_shape[1] != 2 or partial_shape[2] != c:
        raise ValueError(f"partial must have shape ({n}, 2, {c}), received "
                         f"({partial_shape[0]}, {partial_shape[1]}, {partial_shape[2]})")
    return 0


def groupnorm_forward(const floating[:, :, ::1] x__nsc,    # IN  (N, S, C)
                      const floating[::1] gamma,           # IN  (C,)
                      const floating[::1] beta,            # IN  (C,)
                      floating[:, :, ::1] y__nsc,          # OUT (N, S, C)
                      floating[:, ::1] mean__ng,           # OUT (N, G)
                      floating[:, ::1] inv_std__ng,        # OUT (N, G)
                      double[:, :, ::1] partial__n2c,      # OUT scratch (N, 2, C)
                      int groups, double epsilon, int n_threads):
    """y = (x - mean) * inv_std * gamma + beta, mean and inv_std those of the sample's group of
    the channel. A group's sums are its channels' sums over S, added in channel order."""
    cdef Py_ssize_t n = x__nsc.shape[0], s = x__nsc.shape[1], c = x__nsc.shape[2]
    _check_groups(x__nsc.shape, y__nsc.shape, groups, min(gamma.shape[0], beta.shape[0]),
                  min(mean__ng.shape[0], inv_std__ng.shape[0]), partial__n2c.shape)
    if mean__ng.shape[1] != groups or inv_std__ng.shape[1] != groups:
        raise ValueError(f"Expected mean and inv_std of {groups} groups, received "
                         f"{mean__ng.shape[1]} and {inv_std__ng.shape[1]}")
    cdef Py_ssize_t width = c // groups, b, q, g, j
    cdef double total, d
    with nogil:
        for b in prange(n, schedule="static", num_threads=threads_for(n * s * c, n_threads)):
            for j in range(c):
                partial__n2c[b, 0, j] = 0
                partial__n2c[b, 1, j] = 0
            for q in range(s):
                for j in range(c):
                    partial__n2c[b, 0, j] += x__nsc[b, q, j]
            for g in range(groups):
                total = 0
                for j in range(g * width, (g + 1) * width):
                    total = total + partial__n2c[b, 0, j]
                mean__ng[b, g] = total / (s * width)
            for q in range(s):
                for g in range(groups):
                    for j in range(g * width, (g + 1) * width):
                        d = <double>x__nsc[b, q, j] - mean__ng[b, g]
                        partial__n2c[b, 1, j] += d * d
            for g in range(groups):
                total = 0
                for j in range(g * width, (g + 1) * width):
                    total = total + partial__n2c[b, 1, j]
                inv_std__ng[b, g] = 1 / sqrt(total / (s * width) + epsilon)
            for q in range(s):
                for g in range(groups):
                    for j in range(g * width, (g + 1) * width):
                        y__nsc[b, q, j] = ((x__nsc[b, q, j] - mean__ng[b, g]) * inv_std__ng[b, g]
                                           * gamma[j] + beta[j])


def groupnorm_backward(const floating[:, :, ::1] x__nsc,     # IN  (N, S, C)
                       const floating[:, :, ::1] dy__nsc,    # IN  (N, S, C)
                       const floating[::1] gamma,            # IN  (C,)
                       const floating[:, ::1] mean__ng,      # IN  (N, G) the forward's
                       const floating[:, ::1] inv_std__ng,   # IN  (N, G) the forward's
                       floating[:, :, ::1] dx__nsc,          # OUT (N, S, C), or None to skip it
                       floating[::1] dgamma,                 # OUT (C,)
                       floating[::1] dbeta,                  # OUT (C,)
                       double[:, :, ::1] partial__n2c,       # OUT scratch (N, 2, C)
                       int groups, int n_threads):
    """With xhat = (x - mean) * inv_std and g = dy * gamma: dbeta = sum(dy) and dgamma =
    sum(dy * xhat) over samples and positions, and over the M = S * C / G values of each
    (sample, group)

        dx = inv_std * (g - sum(g) / M - xhat * sum(g * xhat) / M).

    Each sample's per-channel sums of dy and dy * xhat (partial) give both: dgamma and dbeta
    add them in sample order, and a group's sum(g) is the sum of gamma times its channels'.
    """
    cdef Py_ssize_t n = x__nsc.shape[0], s = x__nsc.shape[1], c = x__nsc.shape[2]
    _check_groups(x__nsc.shape, dy__nsc.shape, groups,
                  min(gamma.shape[0], dgamma.shape[0], dbeta.shape[0]),
                  min(mean__ng.shape[0], inv_std__ng.shape[0]), partial__n2c.shape)
    if mean__ng.shape[1] != groups or inv_std__ng.shape[1] != groups:
        raise ValueError(f"Expected mean and inv_std of {groups} groups, received "
                         f"{mean__ng.shape[1]} and {inv_std__ng.shape[1]}")
    if dx__nsc is not None:
        _check_groups(x__nsc.shape, dx__nsc.shape, groups, c, n, partial__n2c.shape)
    cdef Py_ssize_t width = c // groups, b, q, g, j
    cdef int threads = threads_for(n * s * c, n_threads)
    cdef bint want_dx = dx__nsc is not None
    cdef double xhat, sum_g, sum_g_xhat
    with nogil:
        for b in prange(n, schedule="static", num_threads=threads):
            for j in range(c):
                partial__n2c[b, 0, j] = 0
                partial__n2c[b, 1, j] = 0
            for q in range(s):
                for g in range(groups):
                    for j in range(g * width, (g + 1) * width):
                        xhat = (<double>x__nsc[b, q, j] - mean__ng[b, g]) * inv_std__ng[b, g]
                        partial__n2c[b, 0, j] += dy__nsc[b, q, j]
                        partial__n2c[b, 1, j] += dy__nsc[b, q, j] * xhat
        _fold(partial__n2c, dgamma, dbeta)
        for b in prange(n if want_dx else 0, schedule="static", num_threads=threads):
            # Group g's two means overwrite partial[b, :, g]: the channel sums at index g belong
            # to group g // width <= g, which has been read by then.
            for g in range(groups):
                sum_g = 0
                sum_g_xhat = 0
                for j in range(g * width, (g + 1) * width):
                    sum_g = sum_g + gamma[j] * partial__n2c[b, 0, j]
                    sum_g_xhat = sum_g_xhat + gamma[j] * partial__n2c[b, 1, j]
                partial__n2c[b, 0, g] = sum_g / (s * width)
                partial__n2c[b, 1, g] = sum_g_xhat / (s * width)
            for q in range(s):
                for g in range(groups):
                    for j in range(g * width, (g + 1) * width):
                        xhat = (<double>x__nsc[b, q, j] - mean__ng[b, g]) * inv_std__ng[b, g]
                        dx__nsc[b, q, j] = inv_std__ng[b, g] * (
                            <double>dy__nsc[b, q, j] * gamma[j] - partial__n2c[b, 0, g]
                            - xhat * partial__n2c[b, 1, g])
