# Included by the kernel modules whose loops run over elements or rows: one rule for when
# threading pays off, the run length of the loops that hand a C function one run of elements
# per parallel step, and the lookup of a run in a loop over the runs of several arrays.

cdef inline int threads_for(Py_ssize_t work, int n_threads) noexcept nogil:
    """n_threads, but one thread below 32768 elements of work, where an OpenMP fork/join would
    cost more than the loop itself (and for n_threads < 1)."""
    if work < 32768 or n_threads < 1:
        return 1
    return n_threads


cdef enum:
    RUN = 4096  # elements per parallel step


cdef inline Py_ssize_t runs_of(Py_ssize_t n) noexcept nogil:
    """How many RUN-element steps cover n elements."""
    return (n + RUN - 1) // RUN


cdef inline Py_ssize_t tensor_of_run(const Py_ssize_t *first, Py_ssize_t nt,
                                     Py_ssize_t c) noexcept nogil:
    """The tensor t whose runs first[t] <= c < first[t + 1] include run c, of nt tensors whose
    runs are numbered one after another (the last such t: a tensor without runs is skipped)."""
    cdef Py_ssize_t lo = 0, hi = nt - 1, mid
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if first[mid] <= c:
            lo = mid
        else:
            hi = mid - 1
    return lo
