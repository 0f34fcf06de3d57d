"""The L1 and L2 regularisers' kernels on flat arrays: the penalties' gradients as y += alpha x
(also decoupled weight decay) and y += alpha sign(x), and the penalties as chunked sums of
squares and of absolute values."""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport fabs

include "_threads.pxi"


def axpy(const floating[::1] x,   # IN  (n,), may be y itself
         floating[::1] y,         # IN/OUT (n,)
         double alpha, int n_threads):
    """y += alpha x: the L2 penalty's gradient, and decoupled weight decay when x is y."""
    cdef Py_ssize_t i, n = y.shape[0]
    cdef floating a = alpha
    for i in prange(n, nogil=True, schedule="static", num_threads=threads_for(n, n_threads)):
        y[i] += a * x[i]


def chunk_sums(const floating[::1] x,   # IN  (n,)
               double[::1] partial,     # OUT (chunks,) one sum per chunk
               bint absolute, int n_threads):
    """partial[c] = sum over chunk c of |x_i| (absolute) or x_i^2, x being cut into
    len(partial) runs of equal length (the last may be shorter). Summing partial in order gives
    a total that does not depend on the thread count, unlike an OpenMP reduction."""
    cdef Py_ssize_t c, i, n = x.shape[0], chunks = partial.shape[0]
    cdef Py_ssize_t size = (n + chunks - 1) // chunks
    cdef double total
    for c in prange(chunks, nogil=True, schedule="static", num_threads=threads_for(n, n_threads)):
        total = 0
        if absolute:
            for i in range(c * size, min(n, (c + 1) * size)):
                total = total + fabs(x[i])
        else:
            for i in range(c * size, min(n, (c + 1) * size)):
                total = total + <double>x[i] * x[i]
        partial[c] = total


def add_sign(const floating[::1] x,   # IN  (n,)
             floating[::1] y,         # IN/OUT (n,)
             double alpha, int n_threads):
    """y += alpha sign(x), sign(0) = 0: the L1 penalty's gradient."""
    cdef Py_ssize_t i, n = y.shape[0]
    cdef floating a = alpha
    for i in prange(n, nogil=True, schedule="static", num_threads=threads_for(n, n_threads)):
        if x[i] > 0:
            y[i] += a
        elif x[i] < 0:
            y[i] -= a
