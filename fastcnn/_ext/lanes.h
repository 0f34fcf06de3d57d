/* The inner loop of the lane sums and products (lanes.pxi says the order), compiled once per
 * SIMD level (cpu.h), with no FMA and no contraction, so that every level adds in the same order
 * and gives the same bits.
 */
#ifndef FASTCNN_LANES_H
#define FASTCNN_LANES_H

#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")

#include <stddef.h>

#include "cpu.h"

enum { FCNN_LANES = 16 };

/* n values of x into the lanes, x[0] being lane 0's next value: added, or multiplied (PRODUCT). */
#define FCNN_LANES_FOLD(ATTR, name, T, PRODUCT)                                                   \
    ATTR static void name(double *restrict lane, const T *x, ptrdiff_t n)                         \
    {                                                                                             \
        const ptrdiff_t full = n - n % FCNN_LANES;                                                \
        double acc[FCNN_LANES];                                                                   \
        for (int k = 0; k < FCNN_LANES; k++)                                                      \
            acc[k] = lane[k];                                                                     \
        for (ptrdiff_t c = 0; c < full; c += FCNN_LANES)                                          \
            for (int k = 0; k < FCNN_LANES; k++)                                                  \
                acc[k] = PRODUCT ? acc[k] * (double)x[c + k] : acc[k] + (double)x[c + k];         \
        for (ptrdiff_t k = 0; k < n - full; k++)                                                  \
            acc[k] = PRODUCT ? acc[k] * (double)x[full + k] : acc[k] + (double)x[full + k];       \
        for (int k = 0; k < FCNN_LANES; k++)                                                      \
            lane[k] = acc[k];                                                                     \
    }

#define FCNN_LANES_LEVEL(ATTR, LEVEL)                                                             \
    FCNN_LANES_FOLD(ATTR, fcnn_lanes_add_f32_##LEVEL, float, 0)                                   \
    FCNN_LANES_FOLD(ATTR, fcnn_lanes_add_f64_##LEVEL, double, 0)                                  \
    FCNN_LANES_FOLD(ATTR, fcnn_lanes_mul_f32_##LEVEL, float, 1)                                   \
    FCNN_LANES_FOLD(ATTR, fcnn_lanes_mul_f64_##LEVEL, double, 1)

FCNN_LANES_LEVEL(, scalar)
#if FCNN_X86
FCNN_LANES_LEVEL(FCNN_TARGET_AVX512_NOFMA, avx512)
FCNN_LANES_LEVEL(FCNN_TARGET_AVX2_NOFMA, avx2)
#endif

#define FCNN_LANES_DISPATCHED(name, T)                                                            \
    static void name(double *lane, const T *x, ptrdiff_t n)                                       \
    {                                                                                             \
        FCNN_DISPATCH(fcnn_level, name, lane, x, n);                                              \
    }
FCNN_LANES_DISPATCHED(fcnn_lanes_add_f32, float)
FCNN_LANES_DISPATCHED(fcnn_lanes_add_f64, double)
FCNN_LANES_DISPATCHED(fcnn_lanes_mul_f32, float)
FCNN_LANES_DISPATCHED(fcnn_lanes_mul_f64, double)

#pragma GCC pop_options

#endif
