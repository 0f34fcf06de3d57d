# Included by the elementwise kernels: one rule for when threading pays off.

cdef inline int threads_for(Py_ssize_t work, int n_threads) noexcept nogil:
    """Below ~32k elements an OpenMP fork/join costs more than the loop itself."""
    if work < 32768 or n_threads < 1:
        return 1
    return n_threads
