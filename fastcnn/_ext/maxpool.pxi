# maxpool.h's declarations, included by pool.pyx (the MaxPooling2D kernels) and conv.pyx (the
# fused conv + max-pool step), which run the same max-pool core.
cdef extern from "maxpool.h" nogil:
    ctypedef struct fcnn_pool_geom:
        int ph, pw, kh, kw, sh, sw, h, pt, pl
    int fcnn_pooled_rows(const fcnn_pool_geom *p)
    int fcnn_pooled_cols(const fcnn_pool_geom *p)
    void fcnn_maxpool_rows_f32(int level, const fcnn_pool_geom *p, const float *z, int zw, int co,
                               int i0, int i1, float *out, int *argmax)
    void fcnn_maxpool_rows_f64(const fcnn_pool_geom *p, const double *z, int zw, int co, int i0,
                               int i1, double *out, int *argmax)
    Py_ssize_t fcnn_maxpool_scatter_f32(const float *dy, const float *pooled, const int *argmax,
                                        size_t nout, size_t image, int relu, float *dx)
    Py_ssize_t fcnn_maxpool_scatter_f64(const double *dy, const double *pooled, const int *argmax,
                                        size_t nout, size_t image, int relu, double *dx)
    int fcnn_unpool_image(int level, const fcnn_pool_geom *p, const float *dy, const float *pooled,
                          const int *argmax, int zw, int co, int relu, float *dz)
