# Sums (and products) over a contiguous run of values in LANES independent double accumulators,
# in a fixed order: value j goes to lane j % LANES, each lane from its first value on, and the
# lanes are folded in halves at the end (lane k += lane k + width, width = LANES / 2, ... 1).
# The lanes do not depend on one another, so the compiler keeps them in vector registers; the
# order does not depend on the thread count. Runs shorter than LANES are summed left to right.
# The NumPy twins are fastcnn._reference.reduce.lane_sum and lane_prod.

cdef extern from "lanes.h" nogil:
    enum:
        LANES "FCNN_LANES"
    void fcnn_lanes_add_f32(double *lane, const float *x, Py_ssize_t n)
    void fcnn_lanes_add_f64(double *lane, const double *x, Py_ssize_t n)
    void fcnn_lanes_mul_f32(double *lane, const float *x, Py_ssize_t n)
    void fcnn_lanes_mul_f64(double *lane, const double *x, Py_ssize_t n)


cdef inline void _lanes_start(double *lane, const floating *x) noexcept nogil:
    """The lanes from the first LANES values (so that -0.0 stays -0.0)."""
    cdef Py_ssize_t k
    for k in range(LANES):
        lane[k] = x[k]


cdef inline void _lanes_add(double *lane, const floating *x, Py_ssize_t n,
                            bint product=False) noexcept nogil:
    """n values into the lanes, x[0] being lane 0's next value: added, or multiplied
    (``product``), by lanes.h at the module's SIMD level."""
    if floating is float:
        (fcnn_lanes_mul_f32 if product else fcnn_lanes_add_f32)(lane, x, n)
    else:
        (fcnn_lanes_mul_f64 if product else fcnn_lanes_add_f64)(lane, x, n)


cdef inline double _lanes_total(double *lane, bint product=False) noexcept nogil:
    cdef Py_ssize_t k, width = LANES // 2
    while width >= 1:
        for k in range(width):
            lane[k] = lane[k] * lane[k + width] if product else lane[k] + lane[k + width]
        width = width // 2
    return lane[0]


cdef inline double _lane_sum(const floating *x, Py_ssize_t n, bint product=False) noexcept nogil:
    """The sum of x[0 .. n - 1], n >= 1, or their product (``product``)."""
    cdef double lane[LANES]
    cdef double s
    cdef Py_ssize_t j
    if n < LANES:
        s = x[0]
        for j in range(1, n):
            s = s * x[j] if product else s + x[j]
        return s
    _lanes_start(lane, x)
    _lanes_add(lane, x + LANES, n - LANES, product)
    return _lanes_total(lane, product)
