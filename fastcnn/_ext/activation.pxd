# The row softmax of activation.softmax_forward, shared with the cross-entropy kernels of
# loss.pyx, which cimport it: one implementation of softmax.
from cython cimport floating
from libc.math cimport exp, log


cdef inline double row_softmax(const floating* z, floating* p, Py_ssize_t k) noexcept nogil:
    """p = softmax(z) over k entries (p may be z); returns log(sum(exp(z))). The row is shifted
    by its max so that exp never overflows, and each entry takes one exp: the log-sum-exp comes
    from the same sum, and p is scaled by that sum's reciprocal."""
    cdef double top = z[0], total = 0, v
    cdef Py_ssize_t j
    for j in range(1, k):
        if z[j] > top:
            top = z[j]
    for j in range(k):
        v = exp(z[j] - top)
        p[j] = v
        total += v
    v = 1 / total
    for j in range(k):
        p[j] = p[j] * v
    return top + log(total)
