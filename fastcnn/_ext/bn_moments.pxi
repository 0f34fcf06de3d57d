# Included by normalization.pyx and conv.pyx: each chunk's column means and squared deviations,
# the partial sums of batch normalisation's statistics, which a conv forward also sums as it
# writes its output (normalization.h; one name for both float types).
cdef extern from "normalization.h" nogil:
    void fcnn_bn_moments_f32(const float *x, Py_ssize_t rows, Py_ssize_t c, double *mean,
                             double *m2)
    void fcnn_bn_moments_f64(const double *x, Py_ssize_t rows, Py_ssize_t c, double *mean,
                             double *m2)


cdef inline void _moments(const floating *x, Py_ssize_t rows, Py_ssize_t c, double *mean,
                          double *m2) noexcept nogil:
    if floating is float:
        fcnn_bn_moments_f32(x, rows, c, mean, m2)
    else:
        fcnn_bn_moments_f64(x, rows, c, mean, m2)
