# Included by every module whose kernels dispatch on cpu.h's SIMD level: the module's own path
# query and override. cpu.h's state is static, so each module detects the level at load and
# tests cap each module's path on its own.
cdef extern from "cpu.h" nogil:
    int fcnn_simd_level()
    int fcnn_simd_set(int level)

_PATHS = ("scalar", "avx2", "avx512")


def simd_path():
    """The SIMD code path of this module's kernels: "avx512", "avx2" or "scalar"."""
    return _PATHS[fcnn_simd_level()]


def _set_simd_path(name):
    """Caps the SIMD path (for tests of the lower paths); returns the path now in use."""
    fcnn_simd_set(_PATHS.index(name))
    return simd_path()
