/* Dropout's keep-or-zero step, without a branch or an int-to-float conversion per element.
 *
 * Element j of a mask is kept when the top 24 bits of a counter-based hash of (seed, j) reach
 * ceil(rate * 2^24): a counter-based draw needs no buffer of random numbers, parallelises freely
 * and gives the same mask for any thread count. The hash is two rounds of a 32-bit integer mixer
 * over the low half of j, keyed by splitmix64(seed, high half of j): 32-bit multiplies vectorise
 * sixteen to an AVX-512 register, where a 64-bit hash per element (vpmullq, eight to a register
 * and three times the cost) took 1.1 ns an element. The keep flag is a random bit, so a branch on
 * it mispredicts half the time, and converting it to a float multiplier costs a partial-register
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

static inline uint64_t fc_splitmix64(uint64_t seed, uint64_t i)
{
    uint64_t z = seed + (i + 1) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* A bijective 32-bit mixer ("lowbias32", by Chris Wellons' hash-prospector). */
static inline uint32_t fc_mix32(uint32_t x)
{
    x = (x ^ (x >> 16)) * 0x7FEB352DU;
    x = (x ^ (x >> 15)) * 0x846CA68BU;
    return x ^ (x >> 16);
}

/* The 24-bit draw of element lo of a block of 2^32 whose key is (k1, k2). */
static inline uint32_t fc_dropout_bits(uint32_t lo, uint32_t k1, uint32_t k2)
{
    return fc_mix32(fc_mix32(lo ^ k1) + k2) >> 8;
}

static inline uint32_t fc_dropout_threshold(double rate)
{
    return (uint32_t)ceil(rate * 16777216.0);
}

static inline float fc_dropout_f32(float v, uint32_t bits24, uint32_t threshold)
{
    uint32_t keep = (uint32_t)0 - (uint32_t)(bits24 >= threshold), bits;
    memcpy(&bits, &v, sizeof bits);
    bits &= keep;
    memcpy(&v, &bits, sizeof v);
    return v;
}

static inline double fc_dropout_f64(double v, uint32_t bits24, uint32_t threshold)
{
    uint64_t keep = (uint64_t)0 - (uint64_t)(bits24 >= threshold), bits;
    memcpy(&bits, &v, sizeof bits);
    bits &= keep;
    memcpy(&v, &bits, sizeof v);
    return v;
}

/* out[i] = the scaled x[i] if element first + i is kept, else 0, for i < n; in runs that do not
 * cross a multiple of 2^32, so that each run has one key. Built for AVX-512 and AVX2 too
 * (FC_CLONES). */
#define FC_DROPOUT_ARRAY(name, type, fn)                                                          \
    FC_CLONES static void name(const type *x, type *out, ptrdiff_t n, uint64_t first,            \
                               uint64_t seed, uint32_t threshold, type scale)                    \
    {                                                                                             \
        for (ptrdiff_t i = 0; i < n;) {                                                           \
            const uint64_t j = first + (uint64_t)i, left = ((uint64_t)1 << 32) - (uint32_t)j;     \
            const ptrdiff_t run = (uint64_t)(n - i) < left ? n - i : (ptrdiff_t)left;             \
            const uint64_t key = fc_splitmix64(seed, j >> 32);                                    \
            const uint32_t lo = (uint32_t)j, k1 = (uint32_t)key, k2 = (uint32_t)(key >> 32);      \
            for (ptrdiff_t t = 0; t < run; t++)                                                   \
                out[i + t] = fn(x[i + t] * scale,                                                 \
                                fc_dropout_bits(lo + (uint32_t)t, k1, k2), threshold);            \
            i += run;                                                                             \
        }                                                                                         \
    }

FC_DROPOUT_ARRAY(fc_dropout_array_f32, float, fc_dropout_f32)
FC_DROPOUT_ARRAY(fc_dropout_array_f64, double, fc_dropout_f64)

#endif
