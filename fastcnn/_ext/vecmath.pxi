# exp and log of float32 in code that vectorises: range reduction and the Cephes polynomials, no
# library call and no branch per element (edges by selects). Every step is a float32 operation
# in a fixed order, so that the NumPy twin (fastcnn._reference.program) repeats it bit for bit.
from libc.stdint cimport uint32_t


cdef union _Bits:
    float f
    uint32_t u


cdef inline uint32_t _bits(float x) noexcept nogil:
    cdef _Bits b
    b.f = x
    return b.u


cdef inline float _from_bits(uint32_t u) noexcept nogil:
    cdef _Bits b
    b.u = u
    return b.f


cdef inline float _pow2f(int n) noexcept nogil:
    """2 ** n for a normal n, -126 <= n <= 127, from its exponent bits."""
    return _from_bits((<uint32_t>(n + 127)) << 23)


cdef void _expf(float *d, const float *a, Py_ssize_t m) noexcept nogil:
    """d = exp(a): a = n log 2 + r, |r| <= log(2) / 2, exp(r) from a polynomial, times 2 ** n in
    two factors (so that a subnormal result is rounded once). Inputs are clamped to [-104, 89],
    beyond which the result is 0 or inf anyway; NaN passes the clamps."""
    cdef Py_ssize_t j
    cdef float x, nf, r, z, p
    cdef int n, half
    for j in range(m):
        x = a[j]
        x = <float>89.0 if x > <float>89.0 else x
        x = <float>-104.0 if x < <float>-104.0 else x
        # n = x / log 2 to the nearest whole number, ties to even: 1.5 * 2 ** 23 added and taken
        # away leaves no fraction bits
        nf = (x * <float>1.44269504088896341 + <float>12582912.0) - <float>12582912.0
        n = <int>nf
        r = (x - nf * <float>0.693359375) - nf * <float>-2.12194440e-4
        z = r * r
        p = (((((<float>1.9875691500e-4 * r + <float>1.3981999507e-3) * r
                + <float>8.3334519073e-3) * r + <float>4.1665795894e-2) * r
              + <float>1.6666665459e-1) * r + <float>5.0000001201e-1)
        p = (p * z + r) + <float>1.0
        half = n >> 1
        d[j] = (p * _pow2f(half)) * _pow2f(n - half)


cdef void _logf(float *d, const float *a, Py_ssize_t m) noexcept nogil:
    """d = log(a): a = 2 ** e * f, f in [sqrt(1/2), sqrt(2)), log(f) from a polynomial in f - 1;
    subnormals are scaled by 2 ** 25 first. 0 gives -inf, negatives NaN, inf and NaN
    themselves."""
    cdef Py_ssize_t j
    cdef float x, y, f, z, fe, r
    cdef int e, tiny, low, keep
    cdef uint32_t u
    for j in range(m):
        x = a[j]
        tiny = x < <float>1.17549435e-38
        u = _bits(x * <float>33554432.0 if tiny else x)
        e = <int>((u >> 23) & 0xff) - 126 - (25 if tiny else 0)
        f = _from_bits((u & 0x007fffff) | 0x3f000000)  # the fraction in [0.5, 1)
        low = f < <float>0.707106781186547524
        e = e - low
        f = (f + f if low else f) - <float>1.0  # exact
        z = f * f
        y = ((((((((<float>7.0376836292e-2 * f - <float>1.1514610310e-1) * f
                   + <float>1.1676998740e-1) * f - <float>1.2420140846e-1) * f
                 + <float>1.4249322787e-1) * f - <float>1.6668057665e-1) * f
               + <float>2.0000714765e-1) * f - <float>2.4999993993e-1) * f
             + <float>3.3333331174e-1)
        y = (y * f) * z
        fe = <float>e
        y = y + fe * <float>-2.12194440e-4
        y = y - z * <float>0.5
        r = (f + y) + fe * <float>0.693359375
        r = -<float>INFINITY if x == 0 else r
        r = <float>NAN if x < 0 else r
        keep = (x != x) | (x == <float>INFINITY)
        d[j] = x if keep else r
