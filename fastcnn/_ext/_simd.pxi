# Included by the modules that run conv_simd.h's kernels (conv, dense). The header's state is
# static, so each module holds its own copy: each detects the SIMD path at import, and tests cap
# each module's path on its own.
from libc.stdlib cimport malloc

cdef extern from "conv_simd.h" nogil:
    int fcnn_simd_init()
    int fcnn_simd_level()
    int fcnn_simd_set(int level)

_PATHS = ("scalar", "avx2", "avx512")

fcnn_simd_init()


def simd_path():
    """The float32 code path in use: "avx512", "avx2" or "scalar"."""
    return _PATHS[fcnn_simd_level()]


def _set_simd_path(name):
    """Caps the float32 path (for tests of the lower paths); returns the path now in use."""
    fcnn_simd_set(_PATHS.index(name))
    return simd_path()


cdef float *_alloc(size_t n) except NULL:
    """Scratch for a kernel call, taken outside its parallel region; the caller frees it."""
    cdef float *p = <float *>malloc((n if n > 0 else 1) * sizeof(float))
    if p == NULL:
        raise MemoryError()
    return p
