"""Activations, softmax and dropout; each forward beside its backward.

Activation kernels work on flat arrays (callers pass ``a.reshape(-1)``). Backward passes take the
forward *output* ``y``, which is all relu, sigmoid and tanh need, so inputs need not be kept.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport exp, tanh
from libc.stdint cimport uint32_t, uint64_t

include "_threads.pxi"


def relu_forward(const floating[::1] x, floating[::1] out, int n_threads):  # IN x, OUT out
    cdef Py_ssize_t i, n = x.shape[0]
    for i in prange(n, nogil=True, schedule="static", num_threads=threads_for(n, n_threads)):
        out[i] = x[i] if x[i] > 0 else 0


def relu_backward(const floating[::1] y, const floating[::1] dy, floating[::1] dx,
                  int n_threads):  # IN y, dy; OUT dx
    # Both operands are loaded before the select so that it compiles without a branch: the
    # sign of y is as good as random, and a mispredicted branch per element costs 10x the loop.
    cdef Py_ssize_t i, n = y.shape[0]
    cdef floating g
    for i in prange(n, nogil=True, schedule="static", num_threads=threads_for(n, n_threads)):
        g = dy[i]
        dx[i] = g if y[i] > 0 else 0


def sigmoid_forward(const floating[::1] x, floating[::1] out, int n_threads):  # IN x, OUT out
    # exp(-x) overflows to inf for very negative x, giving exactly 0 rather than NaN.
    cdef Py_ssize_t i, n = x.shape[0]
    for i in prange(n, nogil=True, schedule="static", num_threads=threads_for(n, n_threads)):
        out[i] = 1 / (1 + exp(-x[i]))


def sigmoid_backward(const floating[::1] y, const floating[::1] dy, floating[::1] dx,
                     int n_threads):  # IN y, dy; OUT dx
    cdef Py_ssize_t i, n = y.shape[0]
    for i in prange(n, nogil=True, schedule="static", num_threads=threads_for(n, n_threads)):
        dx[i] = dy[i] * y[i] * (1 - y[i])


def tanh_forward(const floating[::1] x, floating[::1] out, int n_threads):  # IN x, OUT out
    cdef Py_ssize_t i, n = x.shape[0]
    for i in prange(n, nogil=True, schedule="static", num_threads=threads_for(n, n_threads)):
        out[i] = tanh(x[i])


def tanh_backward(const floating[::1] y, const floating[::1] dy, floating[::1] dx,
                  int n_threads):  # IN y, dy; OUT dx
    cdef Py_ssize_t i, n = y.shape[0]
    for i in prange(n, nogil=True, schedule="static", num_threads=threads_for(n, n_threads)):
        dx[i] = dy[i] * (1 - y[i] * y[i])


def softmax_forward(const floating[:, ::1] x__nk, floating[:, ::1] out__nk,
                    int n_threads):  # IN x, OUT out
    """Row-wise softmax, shifted by the row max so that exp never overflows."""
    cdef Py_ssize_t n = x__nk.shape[0], k = x__nk.shape[1], i, j
    cdef double top, total
    for i in prange(n, nogil=True, schedule="static",
                    num_threads=threads_for(n * k, n_threads)):
        top = x__nk[i, 0]
        for j in range(1, k):
            if x__nk[i, j] > top:
                top = x__nk[i, j]
        total = 0
        for j in range(k):
            out__nk[i, j] = exp(x__nk[i, j] - top)
            total = total + out__nk[i, j]
        for j in range(k):
            out__nk[i, j] = out__nk[i, j] / total


cdef extern from "dropout.h" nogil:
    uint32_t fc_dropout_threshold(double rate)
    void fc_dropout_array_f32(const float *x, float *out, Py_ssize_t n, uint64_t first,
                              uint64_t seed, uint32_t threshold, float scale)
    void fc_dropout_array_f64(const double *x, double *out, Py_ssize_t n, uint64_t first,
                              uint64_t seed, uint32_t threshold, double scale)


cdef void dropout_apply(const floating[::1] x, uint64_t seed, double rate, floating[::1] out,
                        int n_threads) noexcept nogil:
    cdef Py_ssize_t c, i, n = x.shape[0]
    cdef floating scale = 1.0 / (1.0 - rate)
    cdef uint32_t threshold = fc_dropout_threshold(rate)
    for c in prange(runs_of(n), schedule="static", num_threads=threads_for(n, n_threads)):
        i = c * RUN
        if floating is float:
            fc_dropout_array_f32(&x[i], &out[i], min(RUN, n - i), i, seed, threshold, scale)
        else:
            fc_dropout_array_f64(&x[i], &out[i], min(RUN, n - i), i, seed, threshold, scale)


def dropout_forward(const floating[::1] x, uint64_t seed, double rate, floating[::1] out,
                    int n_threads):  # IN x; OUT out
    """Keep each x[i] with probability 1 - rate, scaled by 1 / (1 - rate) so that the
    expectation is unchanged; the rest become 0. The mask is a function of (seed, i) only (see
    dropout.h), so the same seed gives the same mask for any thread count."""
    with nogil:
        dropout_apply(x, seed, rate, out, n_threads)


def dropout_backward(const floating[::1] dy, uint64_t seed, double rate, floating[::1] dx,
                     int n_threads):  # IN dy; OUT dx
    """The gradient through dropout_forward with the same seed and rate: the same mask."""
    with nogil:
        dropout_apply(dy, seed, rate, dx, n_threads)


def softmax_backward(const floating[:, ::1] y__nk, const floating[:, ::1] dy__nk,
                     floating[:, ::1] dx__nk, int n_threads):  # IN y, dy; OUT dx
    """dx = y * (dy - sum_k dy_k y_k), the softmax Jacobian applied row by row."""
    cdef Py_ssize_t n = y__nk.shape[0], k = y__nk.shape[1], i, j
    cdef double dot
    for i in prange(n, nogil=True, schedule="static",
                    num_threads=threads_for(n * k, n_threads)):
        dot = 0
        for j in range(k):
            dot = dot + dy__nk[i, j] * y__nk[i, j]
        for j in range(k):
            dx__nk[i, j] = y__nk[i, j] * (dy__nk[i, j] - dot)
