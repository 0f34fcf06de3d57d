"""Fused softmax + cross-entropy: loss and gradient from the logits in one pass per row.

Working from the logits with a log-sum-exp never forms log(softmax) and stays finite for any
finite input. Per-row losses are written out; the caller sums them in a fixed order so that the
total does not depend on the thread count.
"""
from cython.parallel cimport prange
from libc.math cimport exp, log
from libc.stdint cimport int64_t

ctypedef fused floating:
    float
    double

include "_threads.pxi"


cdef inline double row_logsumexp(const floating* z, Py_ssize_t k) noexcept nogil:
    cdef double top = z[0], total = 0
    cdef Py_ssize_t j
    for j in range(1, k):
        if z[j] > top:
            top = z[j]
    for j in range(k):
        total += exp(z[j] - top)
    return top + log(total)


def softmax_cross_entropy(const floating[:, ::1] logits__nk,   # IN
                          const floating[:, ::1] target__nk,   # IN  one-hot or soft targets
                          floating[:, ::1] grad__nk,           # OUT d loss / d logits
                          floating[::1] loss__n,               # OUT per-row loss
                          double grad_scale, int n_threads):
    """loss_i = -sum_k t_ik log softmax(z_i)_k; grad = grad_scale * (softmax(z_i) sum_k t_ik - t_i)."""
    cdef Py_ssize_t n = logits__nk.shape[0], k = logits__nk.shape[1], i, j
    cdef double lse, mass, total
    for i in prange(n, nogil=True, schedule="static",
                    num_threads=threads_for(n * k, n_threads)):
        lse = row_logsumexp(&logits__nk[i, 0], k)
        mass = 0
        total = 0
        for j in range(k):
            mass = mass + target__nk[i, j]
            total = total - target__nk[i, j] * (logits__nk[i, j] - lse)
        loss__n[i] = total
        for j in range(k):
            grad__nk[i, j] = grad_scale * (exp(logits__nk[i, j] - lse) * mass - target__nk[i, j])


def sparse_softmax_cross_entropy(const floating[:, ::1] logits__nk,   # IN
                                 const int64_t[::1] labels__n,        # IN  class indices
                                 floating[:, ::1] grad__nk,           # OUT
                                 floating[::1] loss__n,               # OUT
                                 double grad_scale, int n_threads):
    """As softmax_cross_entropy with one-hot targets given by index; labels must be in range."""
    cdef Py_ssize_t n = logits__nk.shape[0], k = logits__nk.shape[1], i, j
    cdef double lse
    for i in prange(n, nogil=True, schedule="static",
                    num_threads=threads_for(n * k, n_threads)):
        lse = row_logsumexp(&logits__nk[i, 0], k)
        loss__n[i] = lse - logits__nk[i, labels__n[i]]
        for j in range(k):
            grad__nk[i, j] = grad_scale * exp(logits__nk[i, j] - lse)
        grad__nk[i, labels__n[i]] -= grad_scale
