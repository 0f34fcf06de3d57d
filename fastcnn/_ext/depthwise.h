/* Depthwise convolution, forward, dX and dW, per SIMD level in float and double (see vectors.h
 * for how this header compiles its typed part once per type, and depthwise_lanes.h for the
 * per-width part).
 *
 * Depthwise convolution does about 2 FLOPs per weight tap and value read, so it runs at the speed
 * of memory, not of the FMA units: every loop here streams the channels of one pixel, contiguous
 * in NHWC, against the same channels of one weight tap (kh, kw, c, dm), with the accumulators of
 * a block of channels held in registers across the taps (forward, dX) or across the pixels of an
 * output row (dW). Inside the image, forward and stride-1 dX take two neighbouring pixels per
 * pass so that each weight vector loaded serves both: the loads, not the FMAs, limit the loop
 * once the data is in cache. Windows are never copied into a padded canvas: each pixel's taps
 * are cut to those inside the image, which is where zero padding would have put zeros.
 *
 * Output channel k = ch * dm + m comes from input channel ch and weight w[.., ch, m]. */
#ifndef FCNN_F64
#ifndef FASTCNN_DEPTHWISE_H
#define FASTCNN_DEPTHWISE_H

#include <stddef.h>

#include "cpu.h"
#include "vectors.h"

/* Input (h, w, c) per image, weights (kh, kw, c, dm), output (oh, ow, c*dm); strides (sh, sw),
 * dilation rates (rh, rw), padding before (pt, pl). */
typedef struct {
    int h, w, c, dm, oh, ow, kh, kw, sh, sw, rh, rw, pt, pl;
} fcnn_dwise_geom;

/* Taps (or output pixels) t in [*lo, *hi) of [0, k) whose position start + t*step lies in
 * [0, size). Worked in long long, so that no stride or padding a caller passes can overflow. */
static void fcnn_dwise_span(long long start, long long step, int size, int k, int *lo, int *hi)
{
    long long l = start >= 0 ? 0 : (-start + step - 1) / step;
    long long h = start >= size ? 0 : (size - 1 - start) / step + 1;
    h = h < k ? h : k;
    l = l < h ? l : h;
    *lo = (int)l;
    *hi = (int)h;
}

/* Taps are gathered in batches of this many (pointer pairs on the stack); a window with more
 * continues from what the batch before it stored. */
#define FCNN_DWISE_TAPS 32

#define FCNN_F64 0
#include "depthwise.h"
#define FCNN_F64 1
#include "depthwise.h"

#endif /* FASTCNN_DEPTHWISE_H */
#else /* the part over FCNN_T */

/* With a depth multiplier dm > 1 (rare: MobileNets and Xception use 1) the channels of a pixel
 * no longer line up with those of its weight tap, and these plain loops, which the compiler
 * vectorises where it can, serve every width. Each sums in the order the vector code does. */

/* out[k] = init[k] (0 when init is NULL; init may be out) + sum_t a[t][k / dm] * b[t][k]. */
FCNN_INLINE void FCNN_TN(fcnn_dwise_taps_dm)(int nt, const FCNN_T *const *a,
                                             const FCNN_T *const *b, int c, int dm,
                                             const FCNN_T *init, int relu, FCNN_T *out)
{
    const int co = c * dm;
    for (int k = 0; k < co; k++)
        out[k] = init ? init[k] : (FCNN_T)0;
    for (int t = 0; t < nt; t++)
        for (int ch = 0; ch < c; ch++) {
            const FCNN_T v = a[t][ch];
            const FCNN_T *wb = b[t] + (size_t)ch * dm;
            FCNN_T *ob = out + (size_t)ch * dm;
            for (int m = 0; m < dm; m++)
                ob[m] += v * wb[m];
        }
    if (relu)
        for (int k = 0; k < co; k++)
            out[k] = out[k] < 0 ? (FCNN_T)0 : out[k];
    if (relu == FCNN_RELU6)
        for (int k = 0; k < co; k++)
            out[k] = out[k] > 6 ? (FCNN_T)6 : out[k];
}

/* out[ch] = init[ch] (0 when NULL) + sum_t sum_m a[t][ch*dm + m] * b[t][ch*dm + m]. */
FCNN_INLINE void FCNN_TN(fcnn_dwise_reduce_dm)(int nt, const FCNN_T *const *a,
                                               const FCNN_T *const *b, int c, int dm,
                                               const FCNN_T *init, FCNN_T *out)
{
    for (int ch = 0; ch < c; ch++) {
        FCNN_T s = init ? init[ch] : (FCNN_T)0;
        for (int t = 0; t < nt; t++)
            for (int m = 0; m < dm; m++)
                s += a[t][(size_t)ch * dm + m] * b[t][(size_t)ch * dm + m];
        out[ch] = s;
    }
}

/* acc[k] += sum_{j < n} p[j*ps + k / dm] * q[j*qs + k]. */
FCNN_INLINE void FCNN_TN(fcnn_dwise_strided_dm)(int n, const FCNN_T *p, size_t ps,
                                                const FCNN_T *q, size_t qs, int c, int dm,
                                                FCNN_T *acc)
{
    for (int j = 0; j < n; j++, p += ps, q += qs)
        for (int ch = 0; ch < c; ch++) {
            const FCNN_T v = p[ch];
            for (int m = 0; m < dm; m++)
                acc[(size_t)ch * dm + m] += v * q[(size_t)ch * dm + m];
        }
}

/* acc[k] += sum_{j < n} q[j*qs + k], k < co: the bias gradient of one row. */
FCNN_INLINE void FCNN_TN(fcnn_dwise_colsum)(int n, const FCNN_T *q, size_t qs, int co,
                                            FCNN_T *acc)
{
    for (int j = 0; j < n; j++, q += qs)
        for (int k = 0; k < co; k++)
            acc[k] += q[k];
}

#define FCNN_W FCNN_W512
#include "depthwise_lanes.h"
#define FCNN_W FCNN_W256
#include "depthwise_lanes.h"
#define FCNN_W FCNN_W128
#include "depthwise_lanes.h"

/* The three compilations of each pass, and their dispatch. */
#define FCNN_DWISE_LEVELS(f, params, args)                                                        \
    FCNN_TARGET_AVX512 static void FCNN_TLEVEL(f, _avx512) params                                 \
    {                                                                                             \
        FCNN_AT(f, FCNN_W512) args;                                                               \
    }                                                                                             \
    FCNN_TARGET_AVX2 static void FCNN_TLEVEL(f, _avx2) params { FCNN_AT(f, FCNN_W256) args; }     \
    static void FCNN_TLEVEL(f, _scalar) params { FCNN_AT(f, FCNN_W128) args; }
#if !FCNN_X86
#undef FCNN_DWISE_LEVELS
#define FCNN_DWISE_LEVELS(f, params, args)                                                        \
    static void FCNN_TLEVEL(f, _scalar) params { FCNN_AT(f, FCNN_W128) args; }
#endif

FCNN_DWISE_LEVELS(fcnn_dwise_forward_row,
                  (const fcnn_dwise_geom *g, const FCNN_T *x, const FCNN_T *w,
                   const FCNN_T *bias, int relu, int i, FCNN_T *out),
                  (g, x, w, bias, relu, i, out))
FCNN_DWISE_LEVELS(fcnn_dwise_dx_row,
                  (const fcnn_dwise_geom *g, const FCNN_T *dy, const FCNN_T *w, int r,
                   FCNN_T *dx),
                  (g, dy, w, r, dx))
FCNN_DWISE_LEVELS(fcnn_dwise_dw_rows,
                  (const fcnn_dwise_geom *g, const FCNN_T *x, const FCNN_T *dy, ptrdiff_t r0,
                   ptrdiff_t r1, FCNN_T *part_w, FCNN_T *part_b),
                  (g, x, dy, r0, r1, part_w, part_b))

/* Output row i of one image x: out (ow, c*dm) = relu?(bias + the depthwise convolution). */
static void FCNN_TN(fcnn_dwise_forward_row)(int level, const fcnn_dwise_geom *g, const FCNN_T *x,
                                            const FCNN_T *w, const FCNN_T *bias, int relu, int i,
                                            FCNN_T *out)
{
    FCNN_TDISPATCH(level, fcnn_dwise_forward_row, g, x, w, bias, relu, i, out);
}

/* Input row r of one image's dX (w, c), from that image's dY (oh, ow, c*dm). */
static void FCNN_TN(fcnn_dwise_dx_row)(int level, const fcnn_dwise_geom *g, const FCNN_T *dy,
                                       const FCNN_T *w, int r, FCNN_T *dx)
{
    FCNN_TDISPATCH(level, fcnn_dwise_dx_row, g, dy, w, r, dx);
}

/* The dW (kh, kw, c, dm) and, unless part_b is NULL, db (c*dm) of the output rows [r0, r1) of
 * the batch (row q is image q / oh, row q % oh), written over part_w and part_b. */
static void FCNN_TN(fcnn_dwise_dw_rows)(int level, const fcnn_dwise_geom *g, const FCNN_T *x,
                                        const FCNN_T *dy, ptrdiff_t r0, ptrdiff_t r1,
                                        FCNN_T *part_w, FCNN_T *part_b)
{
    FCNN_TDISPATCH(level, fcnn_dwise_dw_rows, g, x, dy, r0, r1, part_w, part_b);
}

#undef FCNN_F64
#endif
