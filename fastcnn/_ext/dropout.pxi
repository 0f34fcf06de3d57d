# dropout.h's declarations, included by dropout.pyx (the Dropout kernels) and conv.pyx (the
# dropout inside the fused conv + max-pool step), which draw the same masks.
cdef extern from "dropout.h" nogil:
    uint32_t fcnn_dropout_threshold(double rate)
    void fcnn_dropout_array_f32(const float *x, float *out, Py_ssize_t n, uint64_t first,
                                uint64_t seed, uint32_t threshold, float scale)
    void fcnn_dropout_array_f64(const double *x, double *out, Py_ssize_t n, uint64_t first,
                                uint64_t seed, uint32_t threshold, double scale)
