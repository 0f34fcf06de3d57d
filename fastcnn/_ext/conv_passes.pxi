# Included by conv.pyx and dense.pyx: the packing and per-image convolution passes both run (a
# dense layer's forward and dW are 1x1 convolutions of a 1 x n image), and the override of the
# tiles' panel bound for tests. The C functions come in a float (_f32) and a double (_f64)
# compilation of the same code; the fused wrappers here pick one by the type of their arguments.
cdef extern from "tile_kernels.h" nogil:
    int fcnn_panel_bytes_set(int bytes)
    long fcnn_band_bytes_set(long bytes)

cdef extern from "pack.h" nogil:
    enum: FCNN_IMAGES_PER_PARTIAL
    enum: FCNN_ROWS_PER_PARTIAL
    int fcnn_block(int level, int cols, int size)
    int fcnn_round16(int n)
    size_t fcnn_packed_size(int rows, int cols, int cb)
    void fcnn_pack_cols_f32(const float *m, int rows, int cols, int rs, int cs, int cb, float *dst)
    void fcnn_pack_cols_f64(const double *m, int rows, int cols, int rs, int cs, int cb,
                            double *dst)
    void fcnn_sum_parts_f32(float *parts, int nparts, size_t step, int n, float *out)
    void fcnn_sum_parts_f64(double *parts, int nparts, size_t step, int n, double *out)
    ctypedef struct fcnn_tree:
        Py_ssize_t chunks, blocks
        size_t step
        int depth
    fcnn_tree fcnn_tree_plan(Py_ssize_t chunks, int n_threads, size_t step)
    size_t fcnn_tree_size(const fcnn_tree *t, int n_threads)
    Py_ssize_t fcnn_tree_first(const fcnn_tree *t, Py_ssize_t b)
    Py_ssize_t fcnn_tree_end(const fcnn_tree *t, Py_ssize_t b)
    float *fcnn_tree_part_f32(const fcnn_tree *t, float *sums, int thread, Py_ssize_t c)
    double *fcnn_tree_part_f64(const fcnn_tree *t, double *sums, int thread, Py_ssize_t c)
    void fcnn_tree_add_f32(const fcnn_tree *t, float *sums, int thread, Py_ssize_t c)
    void fcnn_tree_add_f64(const fcnn_tree *t, double *sums, int thread, Py_ssize_t c)

cdef extern from "conv_passes.h" nogil:
    ctypedef struct fcnn_geom:
        int h, w, ci, kh, kw, co, oh, ow, sh, sw, pt, pl
    void fcnn_forward_image_f32(int level, const fcnn_geom *g, const float *wp, const float *bp,
                                int relu, const float *x, float *out, float *canvas)
    void fcnn_forward_image_f64(int level, const fcnn_geom *g, const double *wp, const double *bp,
                                int relu, const double *x, double *out, double *canvas)
    size_t fcnn_conv_packed_size(int level, const fcnn_geom *g, int size)
    size_t fcnn_conv_scratch_size(const fcnn_geom *g)
    void fcnn_pack_conv_f32(int level, const float *w, const fcnn_geom *g, float *dst)
    void fcnn_pack_conv_f64(int level, const double *w, const fcnn_geom *g, double *dst)
    void fcnn_conv_image_f32(int level, const fcnn_geom *g, const float *wp, const float *bp,
                             int relu, const float *x, float *out, float *scratch)
    void fcnn_conv_image_f64(int level, const fcnn_geom *g, const double *wp, const double *bp,
                             int relu, const double *x, double *out, double *scratch)
    size_t fcnn_dw_scratch_size(const fcnn_geom *g)
    void fcnn_dw_image_f32(int level, const fcnn_geom *g, const float *x, const float *dy,
                           float *dw, float *db, float *scratch)
    void fcnn_dw_image_f64(int level, const fcnn_geom *g, const double *x, const double *dy,
                           double *dw, double *db, double *scratch)


cdef inline void _pack_cols(const floating *m, int rows, int cols, int rs, int cs, int cb,
                            floating *dst) noexcept nogil:
    if floating is float:
        fcnn_pack_cols_f32(m, rows, cols, rs, cs, cb, dst)
    else:
        fcnn_pack_cols_f64(m, rows, cols, rs, cs, cb, dst)


cdef inline void _sum_parts(floating *parts, int nparts, size_t step, int n,
                            floating *out) noexcept nogil:
    if floating is float:
        fcnn_sum_parts_f32(parts, nparts, step, n, out)
    else:
        fcnn_sum_parts_f64(parts, nparts, step, n, out)


cdef inline floating *_tree_part(const fcnn_tree *t, floating *sums, int thread,
                                 Py_ssize_t c) noexcept nogil:
    if floating is float:
        return fcnn_tree_part_f32(t, sums, thread, c)
    else:
        return fcnn_tree_part_f64(t, sums, thread, c)


cdef inline void _tree_add(const fcnn_tree *t, floating *sums, int thread,
                           Py_ssize_t c) noexcept nogil:
    if floating is float:
        fcnn_tree_add_f32(t, sums, thread, c)
    else:
        fcnn_tree_add_f64(t, sums, thread, c)


cdef inline void _forward_image(int level, const fcnn_geom *g, const floating *wp,
                                const floating *bp, int relu, const floating *x, floating *out,
                                floating *canvas) noexcept nogil:
    if floating is float:
        fcnn_forward_image_f32(level, g, wp, bp, relu, x, out, canvas)
    else:
        fcnn_forward_image_f64(level, g, wp, bp, relu, x, out, canvas)


cdef inline void _pack_conv(int level, const floating *w, const fcnn_geom *g,
                            floating *dst) noexcept nogil:
    if floating is float:
        fcnn_pack_conv_f32(level, w, g, dst)
    else:
        fcnn_pack_conv_f64(level, w, g, dst)


cdef inline void _conv_image(int level, const fcnn_geom *g, const floating *wp,
                             const floating *bp, int relu, const floating *x, floating *out,
                             floating *scratch) noexcept nogil:
    if floating is float:
        fcnn_conv_image_f32(level, g, wp, bp, relu, x, out, scratch)
    else:
        fcnn_conv_image_f64(level, g, wp, bp, relu, x, out, scratch)


cdef inline void _dw_image(int level, const fcnn_geom *g, const floating *x, const floating *dy,
                           floating *dw, floating *db, floating *scratch) noexcept nogil:
    if floating is float:
        fcnn_dw_image_f32(level, g, x, dy, dw, db, scratch)
    else:
        fcnn_dw_image_f64(level, g, x, dy, dw, db, scratch)


def _set_panel_bytes(n):
    """Bounds the weight-panel bytes of one forward sweep (for tests of the K slicing); returns
    the bound it replaces."""
    return fcnn_panel_bytes_set(n)


def _set_band_bytes(n):
    """Bounds the bytes of dY and input rows in one band of the dW pass (for tests of the
    banding); returns the bound it replaces."""
    return fcnn_band_bytes_set(n)
