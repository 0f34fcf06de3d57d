"""Random regularisation: spatial dropout and Gaussian noise, forward beside backward.

The random numbers come from dropout.h's counter-based hashes, a function of (seed, index)
only: the same seed gives the same noise for any thread count, and a backward pass recomputes
its forward's noise instead of storing it.

- Spatial dropout keeps or drops whole channels: channel c of sample n is kept when Dropout's
  draw of element n * C + c is, so it is Dropout over an (N, C) array, broadcast over the
  positions.
- Gaussian noise draws z_i, a standard normal value per element i, by Box-Muller from the 64
  bits of splitmix64(seed, i): the high 32 bits give u1 in (0, 1], the low 32 bits u2 in [0, 1),
  and z = sqrt(-2 log u1) * cos(2 pi u2), computed in double. 32-bit uniforms bound |z| by
  sqrt(64 log 2) = 6.66, a tail of probability 3e-11.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport cos, log, sqrt, M_PI
from libc.stdint cimport uint32_t, uint64_t

include "_threads.pxi"


cdef extern from "dropout.h" nogil:
    uint64_t fcnn_splitmix64(uint64_t seed, uint64_t i)
    uint32_t fcnn_dropout_threshold(double rate)
    uint32_t fcnn_dropout_draw(uint64_t j, uint64_t seed)


cdef inline double _normal(uint64_t seed, uint64_t i) noexcept nogil:
    """The standard normal draw of element i (see the module docstring)."""
    cdef uint64_t h = fcnn_splitmix64(seed, i)
    cdef double u1 = (<double>(h >> 32) + 1) * (1.0 / 4294967296.0)
    cdef double u2 = <double>(h & 0xFFFFFFFFU) * (1.0 / 4294967296.0)
    return sqrt(-2 * log(u1)) * cos(2 * M_PI * u2)


cdef void _channel_scale(const floating[:, :, ::1] x__nsc, const floating[:, ::1] scale__nc,
                         floating[:, :, ::1] out__nsc, int n_threads) noexcept nogil:
    """out[n, s, c] = x[n, s, c] * scale[n, c], one (n, s) row per step."""
    cdef Py_ssize_t n = x__nsc.shape[0], s = x__nsc.shape[1], c = x__nsc.shape[2], row, b, q, j
    for row in prange(n * s, schedule="static", num_threads=threads_for(n * s * c, n_threads)):
        b = row // s
        q = row % s
        for j in range(c):
            out__nsc[b, q, j] = x__nsc[b, q, j] * scale__nc[b, j]


cdef int _check_channels(const Py_ssize_t *x_shape, const Py_ssize_t *out_shape,
                         const Py_ssize_t *keep_shape) except -1:
    """Raise unless the shapes agree; past this point the kernels run without bounds checks."""
    if (out_shape[0] != x_shape[0] or out_shape[1] != x_shape[1] or out_shape[2] != x_shape[2]
            or keep_shape[0] != x_shape[0] or keep_shape[1] != x_shape[2]):
        raise ValueError(f"inconsistent spatial dropout: x ({x_shape[0]}, {x_shape[1]}, "
                         f"{x_shape[2]}), output ({out_shape[0]}, {out_shape[1]}, {out_shape[2]}), "
                         f"keep ({keep_shape[0]}, {keep_shape[1]})")
    return 0


def spatial_dropout_forward(const floating[:, :, ::1] x__nsc,   # IN  (N, S, C)
                            uint64_t seed, double rate,
                            floating[:, :, ::1] out__nsc,       # OUT (N, S, C), may be x itself
                            floating[:, ::1] keep__nc,          # OUT (N, C)
                            int n_threads):
    """Keep each channel of each sample with probability 1 - rate: keep[n, c] is 1 / (1 - rate)
    for a kept channel and 0 for a dropped one, and out = x * keep, broadcast over S."""
    _check_channels(x__nsc.shape, out__nsc.shape, keep__nc.shape)
    cdef Py_ssize_t n = keep__nc.shape[0], c = keep__nc.shape[1], b, j
    cdef uint32_t threshold = fcnn_dropout_threshold(rate)
    cdef floating scale = 1.0 / (1.0 - rate)
    with nogil:
        for b in range(n):
            for j in range(c):
                keep__nc[b, j] = scale if fcnn_dropout_draw(b * c + j, seed) >= threshold else 0
        _channel_scale(x__nsc, keep__nc, out__nsc, n_threads)


def spatial_dropout_backward(const floating[:, :, ::1] dy__nsc,   # IN  (N, S, C)
                             const floating[:, ::1] keep__nc,     # IN  (N, C) the forward's
                             floating[:, :, ::1] dx__nsc,         # OUT (N, S, C), may be dy
                             int n_threads):
    """dx = dy * keep, broadcast over S: the gradient through spatial_dropout_forward."""
    _check_channels(dy__nsc.shape, dx__nsc.shape, keep__nc.shape)
    with nogil:
        _channel_scale(dy__nsc, keep__nc, dx__nsc, n_threads)


def gaussian_noise_forward(const floating[::1] x,   # IN  (n,)
                           uint64_t seed, double stddev,
                           floating[::1] out,       # OUT (n,), may be x itself
                           int n_threads):
    """out[i] = x[i] + stddev * z_i. Its gradient is dy itself, so it has no backward kernel."""
    cdef Py_ssize_t n = x.shape[0], run, i
    if out.shape[0] != n:
        raise ValueError(f"Expected out of {n} elements, received {out.shape[0]}")
    with nogil:
        for run in prange(runs_of(n), schedule="static", num_threads=threads_for(n, n_threads)):
            for i in range(run * RUN, min((run + 1) * RUN, n)):
                out[i] = x[i] + stddev * _normal(seed, i)


cdef void _gaussian_scale(const floating[::1] x, uint64_t seed, double stddev,
                          floating[::1] out, int n_threads) noexcept nogil:
    """out[i] = x[i] * (1 + stddev * z_i)."""
    cdef Py_ssize_t n = x.shape[0], run, i
    for run in prange(runs_of(n), schedule="static", num_threads=threads_for(n, n_threads)):
        for i in range(run * RUN, min((run + 1) * RUN, n)):
            out[i] = x[i] * (1 + stddev * _normal(seed, i))


def gaussian_dropout_forward(const floating[::1] x,   # IN  (n,)
                             uint64_t seed, double stddev,
                             floating[::1] out,       # OUT (n,), may be x itself
                             int n_threads):
    """out[i] = x[i] * (1 + stddev * z_i): multiplicative noise of mean 1."""
    if out.shape[0] != x.shape[0]:
        raise ValueError(f"Expected out of {x.shape[0]} elements, received {out.shape[0]}")
    with nogil:
        _gaussian_scale(x, seed, stddev, out, n_threads)


def gaussian_dropout_backward(const floating[::1] dy,   # IN  (n,)
                              uint64_t seed, double stddev,
                              floating[::1] dx,         # OUT (n,), may be dy itself
                              int n_threads):
    """The gradient through gaussian_dropout_forward with the same seed and stddev: dy times the
    same factors."""
    if dx.shape[0] != dy.shape[0]:
        raise ValueError(f"Expected dx of {dy.shape[0]} elements, received {dx.shape[0]}")
    with nogil:
        _gaussian_scale(dy, seed, stddev, dx, n_threads)
