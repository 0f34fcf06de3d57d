"""Activations: relu, sigmoid, tanh and the row-wise softmax, each forward beside its backward.

The pointwise kernels work on flat arrays (callers pass ``a.reshape(-1)``); softmax works on the
rows of an (N, K) matrix. Backward passes take the forward *output* ``y``, which is all these
activations need, so inputs need not be kept.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport exp, tanh

include "_threads.pxi"


def relu_forward(const floating[::1] x,   # IN  (n,)
                 floating[::1] out,       # OUT (n,)
                 int n_threads):
    """out = max(x, 0)."""
    cdef Py_ssize_t i, n = x.shape[0]
    for i in prange(n, nogil=True, schedule="static", num_threads=threads_for(n, n_threads)):
        out[i] = x[i] if x[i] > 0 else 0


def relu_backward(const floating[::1] y,    # IN  (n,) relu's output
                  const floating[::1] dy,   # IN  (n,)
                  floating[::1] dx,         # OUT (n,)
                  int n_threads):
    """dx = dy where y > 0, else 0."""
    # Both operands are loaded before the select so that it compiles without a branch: the sign
    # of y is as good as random, and a mispredicted branch per element would cost more than the
    # loop's arithmetic.
    cdef Py_ssize_t i, n = y.shape[0]
    cdef floating g
    for i in prange(n, nogil=True, schedule="static", num_threads=threads_for(n, n_threads)):
        g = dy[i]
        dx[i] = g if y[i] > 0 else 0


def sigmoid_forward(const floating[::1] x,   # IN  (n,)
                    floating[::1] out,       # OUT (n,)
                    int n_threads):
    """out = 1 / (1 + exp(-x))."""
    # exp(-x) overflows to inf for very negative x, giving exactly 0 rather than NaN.
    cdef Py_ssize_t i, n = x.shape[0]
    for i in prange(n, nogil=True, schedule="static", num_threads=threads_for(n, n_threads)):
        out[i] = 1 / (1 + exp(-x[i]))


def sigmoid_backward(const floating[::1] y,    # IN  (n,) sigmoid's output
                     const floating[::1] dy,   # IN  (n,)
                     floating[::1] dx,         # OUT (n,)
                     int n_threads):
    """dx = dy * y * (1 - y)."""
    cdef Py_ssize_t i, n = y.shape[0]
    for i in prange(n, nogil=True, schedule="static", num_threads=threads_for(n, n_threads)):
        dx[i] = dy[i] * y[i] * (1 - y[i])


def tanh_forward(const floating[::1] x,   # IN  (n,)
                 floating[::1] out,       # OUT (n,)
                 int n_threads):
    """out = tanh(x)."""
    cdef Py_ssize_t i, n = x.shape[0]
    for i in prange(n, nogil=True, schedule="static", num_threads=threads_for(n, n_threads)):
        out[i] = tanh(x[i])


def tanh_backward(const floating[::1] y,    # IN  (n,) tanh's output
                  const floating[::1] dy,   # IN  (n,)
                  floating[::1] dx,         # OUT (n,)
                  int n_threads):
    """dx = dy * (1 - y^2)."""
    cdef Py_ssize_t i, n = y.shape[0]
    for i in prange(n, nogil=True, schedule="static", num_threads=threads_for(n, n_threads)):
        dx[i] = dy[i] * (1 - y[i] * y[i])


def softmax_forward(const floating[:, ::1] x__nk,   # IN  (N, K), K >= 1
                    floating[:, ::1] out__nk,       # OUT (N, K), may be x itself
                    int n_threads):
    """Row-wise softmax by row_softmax (activation.pxd), the one the cross-entropy kernels use."""
    cdef Py_ssize_t n = x__nk.shape[0], k = x__nk.shape[1], i
    for i in prange(n, nogil=True, schedule="static",
                    num_threads=threads_for(n * k, n_threads)):
        row_softmax(&x__nk[i, 0], &out__nk[i, 0], k)


def softmax_backward(const floating[:, ::1] y__nk,    # IN  (N, K) softmax's output
                     const floating[:, ::1] dy__nk,   # IN  (N, K)
                     floating[:, ::1] dx__nk,         # OUT (N, K)
                     int n_threads):
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
