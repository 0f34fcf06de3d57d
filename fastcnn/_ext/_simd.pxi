# Included by the modules that run conv_simd.h's kernels (conv, dense): the declarations they
# share, the SIMD path (cpu.pxi), scratch allocation and the zero gradients of an empty batch.
cdef extern from "stdlib.h" nogil:
    int posix_memalign(void **memptr, size_t alignment, size_t size)

include "cpu.pxi"

cdef extern from "conv_simd.h" nogil:
    int fcnn_panel_bytes_set(int bytes)
    ctypedef struct fcnn_geom:
        int h, w, ci, kh, kw, co, oh, ow, sh, sw, pt, pl
    int fcnn_block(int level, int cols)
    int fcnn_round16(int n)
    size_t fcnn_packed_size(int rows, int cols, int cb)
    void fcnn_pack_cols(const float *m, int rows, int cols, int rs, int cs, int cb, float *dst)
    void fcnn_forward_image(int level, const fcnn_geom *g, const float *wp, const float *bp,
                            int relu, const float *x, float *out, float *canvas)
    size_t fcnn_dw_scratch_size(const fcnn_geom *g)
    void fcnn_dw_image(int level, const fcnn_geom *g, const float *x, const float *dy,
                       float *dw, float *db, float *scratch)
    void fcnn_sum_parts(const float *parts, int nparts, size_t step, int n, float *out)

def _set_panel_bytes(n):
    """Bounds the weight-panel bytes of one forward sweep (for tests of the K slicing); returns
    the bound it replaces."""
    return fcnn_panel_bytes_set(n)


def _zero_gradients(*gradients):
    """The gradients of an empty batch; None stands for one not asked for."""
    for g in gradients:
        if g is not None:
            g[...] = 0


cdef float *_alloc(size_t n) except NULL:
    """Scratch for a kernel call, taken outside its parallel region; the caller frees it (free).
    Aligned to a cache line: malloc's 16-byte alignment split every 64-byte vector load of the
    packed weights across two lines, which cost up to 1.5x in the dense and conv loops."""
    cdef void *p = NULL
    if posix_memalign(&p, 64, (n if n > 0 else 1) * sizeof(float)) != 0:
        raise MemoryError()
    return <float *>p
