# Included by normalization.pyx, conv.pyx and depthwise.pyx: the passes of batch normalisation
# that a conv also runs (normalization.h; one name for both float types): each chunk's column
# means and squared deviations, the partial sums of the statistics, which a conv or depthwise
# forward sums as it writes its output; the normalisation itself, which a conv applies to its
# input as it loads each image, and its gradient sums, which that conv's backward sums as it
# writes its dX; and the input gradient, which a conv backward makes from the normalisation's
# output gradient as it reads it.
cdef extern from "normalization.h" nogil:
    void fcnn_bn_moments_f32(const float *x, Py_ssize_t rows, Py_ssize_t c, double *mean,
                             double *m2)
    void fcnn_bn_moments_f64(const double *x, Py_ssize_t rows, Py_ssize_t c, double *mean,
                             double *m2)
    void fcnn_bn_apply_f32(const float *x, const float *res, Py_ssize_t rows, Py_ssize_t c,
                           const float *mean, const float *scale, const float *beta, int relu,
                           float cap, float *y)
    void fcnn_bn_apply_f64(const double *x, const double *res, Py_ssize_t rows, Py_ssize_t c,
                           const double *mean, const double *scale, const double *beta,
                           int relu, double cap, double *y)
    void fcnn_bn_grad_sums_f32(const float *x, const float *dy, const float *dy2, const float *res,
                               Py_ssize_t rows, Py_ssize_t c, const float *mean,
                               const float *inv_std, const float *scale, const float *beta,
                               int relu, float cap, float *g_out, double *sum_g, double *sum_gx)
    void fcnn_bn_grad_sums_f64(const double *x, const double *dy, const double *dy2,
                               const double *res, Py_ssize_t rows, Py_ssize_t c, const double *mean,
                               const double *inv_std, const double *scale, const double *beta,
                               int relu, double cap, double *g_out, double *sum_g,
                               double *sum_gx)
    void fcnn_bn_grad_input_f32(const float *x, const float *dy, const float *g_in,
                                Py_ssize_t rows, Py_ssize_t c, const float *mean,
                                const float *inv_std, const float *scale, const float *beta,
                                const float *gamma, const double *mean_g, const double *mean_gx,
                                int relu, float cap, float *dx)
    void fcnn_bn_grad_input_f64(const double *x, const double *dy, const double *g_in,
                                Py_ssize_t rows, Py_ssize_t c, const double *mean,
                                const double *inv_std, const double *scale, const double *beta,
                                const double *gamma, const double *mean_g,
                                const double *mean_gx, int relu, double cap,
                                double *dx)


cdef inline void _moments(const floating *x, Py_ssize_t rows, Py_ssize_t c, double *mean,
                          double *m2) noexcept nogil:
    if floating is float:
        fcnn_bn_moments_f32(x, rows, c, mean, m2)
    else:
        fcnn_bn_moments_f64(x, rows, c, mean, m2)


cdef inline void _apply_rows(const floating *x, const floating *res, Py_ssize_t rows,
                             Py_ssize_t c, const floating *mean, const floating *scale,
                             const floating *beta, int relu, floating cap,
                             floating *y) noexcept nogil:
    if floating is float:
        fcnn_bn_apply_f32(x, res, rows, c, mean, scale, beta, relu, cap, y)
    else:
        fcnn_bn_apply_f64(x, res, rows, c, mean, scale, beta, relu, cap, y)


cdef inline void _grad_sums(const floating *x, const floating *dy, const floating *dy2,
                            const floating *res, Py_ssize_t rows, Py_ssize_t c,
                            const floating *mean, const floating *inv_std, const floating *scale,
                            const floating *beta, int relu, floating cap, floating *g_out,
                            double *sum_g, double *sum_gx) noexcept nogil:
    if floating is float:
        fcnn_bn_grad_sums_f32(x, dy, dy2, res, rows, c, mean, inv_std, scale, beta, relu, cap,
                              g_out, sum_g, sum_gx)
    else:
        fcnn_bn_grad_sums_f64(x, dy, dy2, res, rows, c, mean, inv_std, scale, beta, relu, cap,
                              g_out, sum_g, sum_gx)


cdef inline void _grad_input(const floating *x, const floating *dy, const floating *g_in,
                             Py_ssize_t rows, Py_ssize_t c, const floating *mean,
                             const floating *inv_std, const floating *scale,
                             const floating *beta, const floating *gamma, const double *mean_g,
                             const double *mean_gx, int relu, floating cap,
                             floating *dx) noexcept nogil:
    if floating is float:
        fcnn_bn_grad_input_f32(x, dy, g_in, rows, c, mean, inv_std, scale, beta, gamma, mean_g,
                               mean_gx, relu, cap, dx)
    else:
        fcnn_bn_grad_input_f64(x, dy, g_in, rows, c, mean, inv_std, scale, beta, gamma, mean_g,
                               mean_gx, relu, cap, dx)


cdef floating *_scale(const floating[::1] gamma, const floating[::1] inv_std) except NULL:
    """A new array of scale = gamma * inv_std per channel, rounded once from double; the
    forward and backward kernels (and a conv backward making the normalisation's input
    gradient) all make it here, so that the backward's recomputed relu mask sees the forward's
    values."""
    cdef Py_ssize_t c = gamma.shape[0], j
    cdef floating *scale = <floating *>malloc(max(c, 1) * sizeof(floating))
    if scale == NULL:
        raise MemoryError()
    for j in range(c):
        scale[j] = <floating>(<double>gamma[j] * inv_std[j])
    return scale
