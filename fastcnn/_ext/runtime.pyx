"""What the compiled kernels can do on this machine: OpenMP and its thread count."""

cdef extern from *:
    """
    #if FASTCNN_OPENMP
    #include <omp.h>
    static int fc_openmp_enabled(void) { return 1; }
    static int fc_omp_max_threads(void) { return omp_get_max_threads(); }
    #else
    static int fc_openmp_enabled(void) { return 0; }
    static int fc_omp_max_threads(void) { return 1; }
    #endif
    """
    int fc_openmp_enabled()
    int fc_omp_max_threads()


def openmp_enabled():
    """True when the kernels were built with OpenMP."""
    return bool(fc_openmp_enabled())


def omp_max_threads():
    """OpenMP's default team size (OMP_NUM_THREADS or the logical CPU count); 1 if serial."""
    return fc_omp_max_threads()
