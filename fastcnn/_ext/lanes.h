/* The lane sums' inner loop (lanes.pxi says the order), compiled once per SIMD level (cpu.h), with
 * no FMA and no contraction, so that every level adds in the same order and gives the same bits.
 */
#ifndef FASTCNN_LANES_H
#define FASTCNN_LANES_H

#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")

#include <stddef.h>

#include "cpu.h"

enum { FCNN_LANES = 16 };

/* n values of x into the lanes, x[0] being lane 0's next value. */
#define FCNN_LANES_ADD(ATTR, name, T)                                                             \
    ATTR static void name(double *restrict lane, const T *x, ptrdiff_t n)                         \
    {                                                                                             \
        const ptrdiff_t full = n - n % FCNN_LANES;                                                \
        double acc[FCNN_LANES];                                                                   \
        for (int k = 0; k < FCNN_LANES; k++)                                                      \
            acc[k] = lane[k];                                                                     \
        for (ptrdiff_t c = 0; c < full; c += FCNN_LANES)                                          \
            for (int k = 0; k < FCNN_LANES; k++)                                                  \
                acc[k] = acc[k] + (double)x[c + k];                                               \
        for (ptrdiff_t k = 0; k < n - full; k++)                                                  \
            acc[k] = acc[k] + (double)x[full + k];                                                \
        for (int k = 0; k < FCNN_LANES; k++)                                                      \
            lane[k] = acc[k];                                                                     \
    }

FCNN_LANES_ADD(, fcnn_lanes_add_f32_scalar, float)
FCNN_LANES_ADD(, fcnn_lanes_add_f64_scalar, double)
#if FCNN_X86
FCNN_LANES_ADD(FCNN_TARGET_AVX512_NOFMA, fcnn_lanes_add_f32_avx512, float)
FCNN_LANES_ADD(FCNN_TARGET_AVX512_NOFMA, fcnn_lanes_add_f64_avx512, double)
FCNN_LANES_ADD(FCNN_TARGET_AVX2_NOFMA, fcnn_lanes_add_f32_avx2, float)
FCNN_LANES_ADD(FCNN_TARGET_AVX2_NOFMA, fcnn_lanes_add_f64_avx2, double)
#endif

static void fcnn_lanes_add_f32(double *lane, const float *x, ptrdiff_t n)
{
    FCNN_DISPATCH(fcnn_level, fcnn_lanes_add_f32, lane, x, n);
}

static void fcnn_lanes_add_f64(double *lane, const double *x, ptrdiff_t n)
{
    FCNN_DISPATCH(fcnn_level, fcnn_lanes_add_f64, lane, x, n);
}

#pragma GCC pop_options

#endif
