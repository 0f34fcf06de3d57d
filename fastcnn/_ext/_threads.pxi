# Included by the kernel modules whose loops run over elements or rows: one rule for when
# threading pays off, and the run length of the loops that hand a C function one run of elements
# per parallel step.

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
