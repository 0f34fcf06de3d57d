"""Pairwise distances (L1 and squared L2) and each query's k nearest references.

The references come transposed, ``(d, m)``, so the innermost loop runs along a row of them: its
steps are independent (no sum to reassociate, which the compiler may not do without
-ffast-math) and it vectorises. Four queries share every reference row that is loaded, and the
work is split into tiles of ``TILE_N`` queries x ``TILE_M`` references x ``TILE_D`` features
so that a tile's slab of references stays in L2 while its queries stream past.

The tile body is plain C compiled three times, for AVX-512, AVX2+FMA and the baseline ISA, and
dispatched on cpu.h's SIMD level. With FMA a step may round once instead of twice,
so the paths can differ in the last bit.

Every output element is written by one thread, so results do not depend on ``n_threads``.
"""
from cython cimport floating
from cython.parallel cimport prange

cdef extern from *:
    """
    #include <math.h>
    #include <stddef.h>

    #include "cpu.h"

    /* out[r, j] += sum over k in [k0, k1) of TERM(x[r, k] - yt[k, j]), in k order, for four rows
     * and two k at a time: each pass over an output row then loads and stores it half as often. */
    #define FCNN_DIST_BODY(T, NAME, TERM)                                                         \
    static inline __attribute__((always_inline)) void NAME##_body(                             \
        const T *x, ptrdiff_t ldx, ptrdiff_t rows, const T *yt, ptrdiff_t ldy, ptrdiff_t cols, \
        ptrdiff_t k0, ptrdiff_t k1, T *out, ptrdiff_t ldo)                                     \
    {                                                                                          \
        ptrdiff_t r = 0;                                                                       \
        for (; r + 4 <= rows; r += 4) {                                                        \
            T *restrict o0 = out + r * ldo, *restrict o1 = o0 + ldo;                           \
            T *restrict o2 = o1 + ldo, *restrict o3 = o2 + ldo;                                \
            const T *x0 = x + r * ldx;                                                         \
            ptrdiff_t k = k0;                                                                  \
            for (; k + 2 <= k1; k += 2) {                                                      \
                const T *restrict y = yt + k * ldy, *restrict z = y + ldy;                     \
                const T p0 = x0[k], p1 = x0[ldx + k], p2 = x0[2 * ldx + k];                    \
                const T p3 = x0[3 * ldx + k];                                                  \
                const T q0 = x0[k + 1], q1 = x0[ldx + k + 1], q2 = x0[2 * ldx + k + 1];        \
                const T q3 = x0[3 * ldx + k + 1];                                              \
                for (ptrdiff_t j = 0; j < cols; j++) {                                         \
                    const T v = y[j], w = z[j];                                                \
                    T t, u;                                                                    \
                    t = p0 - v; u = q0 - w; o0[j] = (o0[j] + TERM(t)) + TERM(u);               \
                    t = p1 - v; u = q1 - w; o1[j] = (o1[j] + TERM(t)) + TERM(u);               \
                    t = p2 - v; u = q2 - w; o2[j] = (o2[j] + TERM(t)) + TERM(u);               \
                    t = p3 - v; u = q3 - w; o3[j] = (o3[j] + TERM(t)) + TERM(u);               \
                }                                                                              \
            }                                                                                  \
            for (; k < k1; k++) {                                                              \
                const T *restrict y = yt + k * ldy;                                            \
                const T q0 = x0[k], q1 = x0[ldx + k], q2 = x0[2 * ldx + k];                    \
                const T q3 = x0[3 * ldx + k];                                                  \
                for (ptrdiff_t j = 0; j < cols; j++) {                                         \
                    const T v = y[j];                                                          \
                    o0[j] += TERM(q0 - v); o1[j] += TERM(q1 - v);                              \
                    o2[j] += TERM(q2 - v); o3[j] += TERM(q3 - v);                              \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
        for (; r < rows; r++) {                                                                \
            T *restrict o = out + r * ldo;                                                     \
            for (ptrdiff_t k = k0; k < k1; k++) {                                              \
                const T *restrict y = yt + k * ldy;                                            \
                const T q = x[r * ldx + k];                                                    \
                for (ptrdiff_t j = 0; j < cols; j++)                                           \
                    o[j] += TERM(q - y[j]);                                                    \
            }                                                                                  \
        }                                                                                      \
    }

    #define FCNN_ABS32(t) fabsf(t)
    #define FCNN_ABS64(t) fabs(t)
    #define FCNN_SQUARE(t) ((t) * (t))
    FCNN_DIST_BODY(float, fcnn_l1_f32, FCNN_ABS32)
    FCNN_DIST_BODY(float, fcnn_l2_f32, FCNN_SQUARE)
    FCNN_DIST_BODY(double, fcnn_l1_f64, FCNN_ABS64)
    FCNN_DIST_BODY(double, fcnn_l2_f64, FCNN_SQUARE)

    #define FCNN_DIST_ARGS(T) const T *x, ptrdiff_t ldx, ptrdiff_t rows, const T *yt,            \
        ptrdiff_t ldy, ptrdiff_t cols, ptrdiff_t k0, ptrdiff_t k1, T *out, ptrdiff_t ldo
    #define FCNN_DIST_PASS x, ldx, rows, yt, ldy, cols, k0, k1, out, ldo
    #define FCNN_DIST_COPY(ATTR, T, NAME, LEVEL)                                               \
    ATTR static void NAME##_##LEVEL(FCNN_DIST_ARGS(T)) { NAME##_body(FCNN_DIST_PASS); }
    #define FCNN_DIST_LEVEL(ATTR, LEVEL)                                                       \
    FCNN_DIST_COPY(ATTR, float, fcnn_l1_f32, LEVEL) FCNN_DIST_COPY(ATTR, float, fcnn_l2_f32, LEVEL) \
    FCNN_DIST_COPY(ATTR, double, fcnn_l1_f64, LEVEL) FCNN_DIST_COPY(ATTR, double, fcnn_l2_f64, LEVEL)

    FCNN_DIST_LEVEL(, scalar)
    #if FCNN_X86
    FCNN_DIST_LEVEL(FCNN_TARGET_AVX512_NOFMA, avx512)
    FCNN_DIST_LEVEL(FCNN_TARGET_AVX2, avx2)
    #endif

    /* One function per kernel, running the copy of the module's SIMD level. */
    #define FCNN_DIST_DISPATCH(T, NAME)                                                        \
    static void NAME(FCNN_DIST_ARGS(T)) { FCNN_DISPATCH(fcnn_level, NAME, FCNN_DIST_PASS); }
    FCNN_DIST_DISPATCH(float, fcnn_l1_f32)
    FCNN_DIST_DISPATCH(float, fcnn_l2_f32)
    FCNN_DIST_DISPATCH(double, fcnn_l1_f64)
    FCNN_DIST_DISPATCH(double, fcnn_l2_f64)
    """
    void fcnn_l1_f32(const float *x, Py_ssize_t ldx, Py_ssize_t rows, const float *yt,
                     Py_ssize_t ldy, Py_ssize_t cols, Py_ssize_t k0, Py_ssize_t k1, float *out,
                     Py_ssize_t ldo) noexcept nogil
    void fcnn_l2_f32(const float *x, Py_ssize_t ldx, Py_ssize_t rows, const float *yt,
                     Py_ssize_t ldy, Py_ssize_t cols, Py_ssize_t k0, Py_ssize_t k1, float *out,
                     Py_ssize_t ldo) noexcept nogil
    void fcnn_l1_f64(const double *x, Py_ssize_t ldx, Py_ssize_t rows, const double *yt,
                     Py_ssize_t ldy, Py_ssize_t cols, Py_ssize_t k0, Py_ssize_t k1, double *out,
                     Py_ssize_t ldo) noexcept nogil
    void fcnn_l2_f64(const double *x, Py_ssize_t ldx, Py_ssize_t rows, const double *yt,
                     Py_ssize_t ldy, Py_ssize_t cols, Py_ssize_t k0, Py_ssize_t k1, double *out,
                     Py_ssize_t ldo) noexcept nogil

# 64 queries x 256 references keeps a tile's output (64 KB in float32) and a 256-feature slab
# of references (256 KB) in L2.
cdef enum:
    TILE_N = 64
    TILE_M = 256
    TILE_D = 256

include "cpu.pxi"


cdef inline void _tile(bint l1, const floating *x, Py_ssize_t ldx, Py_ssize_t rows,
                       const floating *yt, Py_ssize_t ldy, Py_ssize_t cols, Py_ssize_t k0,
                       Py_ssize_t k1, floating *out, Py_ssize_t ldo) noexcept nogil:
    if floating is float:
        if l1:
            fcnn_l1_f32(x, ldx, rows, yt, ldy, cols, k0, k1, out, ldo)
        else:
            fcnn_l2_f32(x, ldx, rows, yt, ldy, cols, k0, k1, out, ldo)
    else:
        if l1:
            fcnn_l1_f64(x, ldx, rows, yt, ldy, cols, k0, k1, out, ldo)
        else:
            fcnn_l2_f64(x, ldx, rows, yt, ldy, cols, k0, k1, out, ldo)


def pairwise_distances(const floating[:, ::1] x__nd,     # IN  queries, one per row
                       const floating[:, ::1] yt__dm,    # IN  references, one per column
                       floating[:, ::1] out__nm,         # OUT
                       bint l1, int n_threads):
    """``out[i, j]`` = sum over k of ``|x[i, k] - yt[k, j]|`` (l1) or its square (squared L2).

    Shapes: x (n, d), yt (d, m), out (n, m). Each element sums its d terms in feature order.
    """
    cdef Py_ssize_t n = x__nd.shape[0], d = x__nd.shape[1], m = yt__dm.shape[1]
    if yt__dm.shape[0] != d or out__nm.shape[0] != n or out__nm.shape[1] != m:
        raise ValueError(f"Expected x (n, d), yt (d, m) and out (n, m), received x ({n}, {d}), "
                         f"yt ({yt__dm.shape[0]}, {m}), out ({out__nm.shape[0]}, "
                         f"{out__nm.shape[1]})")
    if n == 0 or m == 0:
        return
    cdef Py_ssize_t row_tiles = (n + TILE_N - 1) // TILE_N, col_tiles = (m + TILE_M - 1) // TILE_M
    cdef Py_ssize_t t, i0, j0, rows, cols, b, k0, i, j
    for t in prange(row_tiles * col_tiles, nogil=True, schedule="static", num_threads=n_threads):
        # Consecutive tiles share a column block, so a thread reuses its slab of references.
        i0 = (t % row_tiles) * TILE_N
        j0 = (t // row_tiles) * TILE_M
        rows = min(TILE_N, n - i0)
        cols = min(TILE_M, m - j0)
        for i in range(i0, i0 + rows):
            for j in range(j0, j0 + cols):
                out__nm[i, j] = 0
        for b in range((d + TILE_D - 1) // TILE_D):
            k0 = b * TILE_D
            _tile(l1, &x__nd[i0, 0], d, rows, &yt__dm[0, j0], m, cols, k0, min(k0 + TILE_D, d),
                  &out__nm[i0, j0], m)


cdef inline bint _before(floating a, floating b) noexcept nogil:
    """a sorts strictly before b, with NaN after every number."""
    return a < b or (b != b and a == a)


def k_smallest(const floating[:, ::1] dist__nm,   # IN
               Py_ssize_t[:, ::1] index__nk,      # OUT columns of the k smallest, nearest first
               floating[:, ::1] dist__nk,         # OUT their distances
               int n_threads):
    """The k = ``index__nk.shape[1]`` smallest entries of each row of ``dist`` (n, m), k <= m.

    Ties go to the smaller column: the order is that of a stable sort of each row. NaN sorts
    after every number, as in NumPy.
    """
    cdef Py_ssize_t n = dist__nm.shape[0], m = dist__nm.shape[1], k = index__nk.shape[1]
    if index__nk.shape[0] != n or dist__nk.shape[0] != n or dist__nk.shape[1] != k or k > m:
        raise ValueError(f"Expected index and dist of shape ({n}, k) with k <= {m}, received "
                         f"({index__nk.shape[0]}, {k}) and ({dist__nk.shape[0]}, "
                         f"{dist__nk.shape[1]})")
    if k == 0:
        return
    cdef Py_ssize_t i, j, p
    cdef floating v
    for i in prange(n, nogil=True, schedule="static", num_threads=n_threads):
        # An insertion-sorted list of the best k so far; a value joins only if it beats the
        # worst strictly, so an earlier column keeps its place among equals.
        for j in range(k):
            index__nk[i, j] = j
            dist__nk[i, j] = dist__nm[i, j]
            p = j
            while p > 0 and _before(dist__nk[i, p], dist__nk[i, p - 1]):
                dist__nk[i, p], dist__nk[i, p - 1] = dist__nk[i, p - 1], dist__nk[i, p]
                index__nk[i, p], index__nk[i, p - 1] = index__nk[i, p - 1], index__nk[i, p]
                p = p - 1
        for j in range(k, m):
            v = dist__nm[i, j]
            if not _before(v, dist__nk[i, k - 1]):
                continue
            p = k - 1
            while p > 0 and _before(v, dist__nk[i, p - 1]):
                dist__nk[i, p] = dist__nk[i, p - 1]
                index__nk[i, p] = index__nk[i, p - 1]
                p = p - 1
            dist__nk[i, p] = v
            index__nk[i, p] = j
