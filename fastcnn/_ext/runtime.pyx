"""What the compiled kernels can do on this machine: whether they were built with OpenMP."""

cdef extern from *:
    """
    #if FASTCNN_OPENMP
    static int fcnn_openmp_enabled(void) { return 1; }
    #else
    static int fcnn_openmp_enabled(void) { return 0; }
    #endif
    """
    int fcnn_openmp_enabled()


def openmp_enabled():
    """True when the kernels were built with OpenMP."""
    return bool(fcnn_openmp_enabled())
