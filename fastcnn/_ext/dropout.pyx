"""Dropout, forward beside backward, over the C core in dropout.h.

The mask is a function of (seed, element index) only, so the same seed gives the same mask for
any thread count, and the backward pass recomputes the forward's mask rather than storing it.
``first`` is the index of x[0] among the elements the mask covers: a process holding part of a
batch draws the part of the whole batch's mask that its elements get.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.stdint cimport uint32_t, uint64_t

include "_threads.pxi"
include "cpu.pxi"
include "dropout.pxi"


cdef void dropout_apply(const floating[::1] x, uint64_t seed, double rate, floating[::1] out,
                        int n_threads, uint64_t first) noexcept nogil:
    """out = x kept or zeroed by the mask of (seed, rate), RUN elements per parallel step."""
    cdef Py_ssize_t c, i, n = x.shape[0]
    cdef floating scale = 1.0 / (1.0 - rate)
    cdef uint32_t threshold = fcnn_dropout_threshold(rate)
    for c in prange(runs_of(n), schedule="static", num_threads=threads_for(n, n_threads)):
        i = c * RUN
        if floating is float:
            fcnn_dropout_array_f32(&x[i], &out[i], min(RUN, n - i), first + i, seed, threshold,
                                   scale)
        else:
            fcnn_dropout_array_f64(&x[i], &out[i], min(RUN, n - i), first + i, seed, threshold,
                                   scale)


def dropout_forward(const floating[::1] x,   # IN  (n,)
                    uint64_t seed, double rate,
                    floating[::1] out,       # OUT (n,), may be x itself
                    int n_threads, uint64_t first=0):
    """Keep each x[i] with probability 1 - rate, scaled by 1 / (1 - rate) so that the
    expectation is unchanged; the rest become 0."""
    with nogil:
        dropout_apply(x, seed, rate, out, n_threads, first)


def dropout_backward(const floating[::1] dy,   # IN  (n,)
                     uint64_t seed, double rate,
                     floating[::1] dx,         # OUT (n,), may be dy itself
                     int n_threads, uint64_t first=0):
    """The gradient through dropout_forward with the same seed and rate: the same mask."""
    with nogil:
        dropout_apply(dy, seed, rate, dx, n_threads, first)
