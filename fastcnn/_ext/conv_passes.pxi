# Included by conv.pyx and dense.pyx: the packing and per-image convolution passes both run (a
# dense layer's float32 forward and dW are 1x1 convolutions of a 1 x n image), and the override of
# the tiles' panel bound for tests.
cdef extern from "tile_kernels.h" nogil:
    int fcnn_panel_bytes_set(int bytes)

cdef extern from "pack.h" nogil:
    int fcnn_block(int level, int cols)
    int fcnn_round16(int n)
    size_t fcnn_packed_size(int rows, int cols, int cb)
    void fcnn_pack_cols(const float *m, int rows, int cols, int rs, int cs, int cb, float *dst)
    void fcnn_sum_parts(const float *parts, int nparts, size_t step, int n, float *out)

cdef extern from "conv_passes.h" nogil:
    ctypedef struct fcnn_geom:
        int h, w, ci, kh, kw, co, oh, ow, sh, sw, pt, pl
    void fcnn_forward_image(int level, const fcnn_geom *g, const float *wp, const float *bp,
                            int relu, const float *x, float *out, float *canvas)
    size_t fcnn_dw_scratch_size(const fcnn_geom *g)
    void fcnn_dw_image(int level, const fcnn_geom *g, const float *x, const float *dy,
                       float *dw, float *db, float *scratch)


def _set_panel_bytes(n):
    """Bounds the weight-panel bytes of one forward sweep (for tests of the K slicing); returns
    the bound it replaces."""
    return fcnn_panel_bytes_set(n)
