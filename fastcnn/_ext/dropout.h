/* Dropout's keep-or-zero step, without a branch or an int-to-float conversion per element.
 *
 * Element j of a mask is kept when a 16-bit draw reaches ceil(rate * 2^16). The draws come from a
 * counter-based hash, which needs no buffer of random numbers, parallelises freely and gives the
 * same mask for any thread count. Each 32-bit hash serves two elements: in each block of 32
 * elements, hash m = (j / 32) * 16 + j % 16 gives its low half to element j and its high half to
 * element j + 16, so sixteen hashes in one AVX-512 register cover 32 elements. (A hash per
 * element, with a 24-bit draw, would be most of the cost of a dropout fused into a conv step.) 16
 * bits put the keep probability within 2^-16 of 1 - rate. The hash is two rounds of a 32-bit
 * integer mixer over the low half of m, keyed by splitmix64(seed, high half of m): 32-bit
 * multiplies vectorise sixteen to an AVX-512 register, where a 64-bit hash needs vpmullq, eight to
 * a register and three times the cost. The keep flag is a random bit, so a branch on it
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

#include "cpu.h"

static inline uint64_t fcnn_splitmix64(uint64_t seed, uint64_t i)
{
    uint64_t z = seed + (i + 1) * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* A bijective 32-bit mixer ("lowbias32", by Chris Wellons' hash-prospector). */
static inline uint32_t fcnn_mix32(uint32_t x)
{
    x = (x ^ (x >> 16)) * 0x7FEB352DU;
    x = (x ^ (x >> 15)) * 0x846CA68BU;
    return x ^ (x >> 16);
}

/* The hash of m's low half lo under the key (k1, k2) of m's high half. */
static inline uint32_t fcnn_dropout_hash(uint32_t lo, uint32_t k1, uint32_t k2)
{
    return fcnn_mix32(fcnn_mix32(lo ^ k1) + k2);
}

/* The hash index of element j, and which half of that hash is j's draw. */
static inline uint64_t fcnn_dropout_slot(uint64_t j)
{
    return (j >> 5 << 4) | (j & 15);
}

static inline uint32_t fcnn_dropout_half(uint32_t h, uint64_t j)
{
    return j & 16 ? h >> 16 : h & 0xFFFF;
}

static inline uint32_t fcnn_dropout_threshold(double rate)
{
    return (uint32_t)ceil(rate * 65536.0);
}

/* v, or +0.0 where the draw falls below the threshold: an and of v's bits with an all-ones or
 * all-zeros mask (U, the unsigned integer of T's width), without a branch. */
#define FCNN_DROPOUT_KEEP(T, U, SUFFIX)                                                           \
    static inline T fcnn_dropout_keep_##SUFFIX(T v, uint32_t draw, uint32_t threshold)            \
    {                                                                                             \
        U keep = (U)0 - (U)(draw >= threshold), bits;                                             \
        memcpy(&bits, &v, sizeof bits);                                                           \
        bits &= keep;                                                                             \
        memcpy(&v, &bits, sizeof v);                                                              \
        return v;                                                                                 \
    }
FCNN_DROPOUT_KEEP(float, uint32_t, f32)
FCNN_DROPOUT_KEEP(double, uint64_t, f64)

/* The draw of element j alone: for the elements before the first block boundary and after the
 * last whole block. */
static inline uint32_t fcnn_dropout_draw(uint64_t j, uint64_t seed)
{
    const uint64_t m = fcnn_dropout_slot(j), key = fcnn_splitmix64(seed, m >> 32);
    return fcnn_dropout_half(fcnn_dropout_hash((uint32_t)m, (uint32_t)key, (uint32_t)(key >> 32)), j);
}

/* Whole blocks go through a buffer of draws, FCNN_DROPOUT_SPAN elements at a time: the hash loop
 * and the keep loop then each vectorise. With both in one loop the compiler vectorised only the
 * hashes, since out may be x itself (the fused conv step drops its output in place). */
enum { FCNN_DROPOUT_SPAN = 256 };

/* out[i] = the scaled x[i] if element first + i is kept, else 0, for i < n; compiled once per
 * SIMD level (ATTR its target) as name_<level>. */
#define FCNN_DROPOUT_ARRAY(ATTR, name, type, fn)                                                  \
    ATTR static void name(const type *x, type *out, ptrdiff_t n, uint64_t first,                  \
                          uint64_t seed, uint32_t threshold, type scale)                          \
    {                                                                                             \
        uint32_t draw[FCNN_DROPOUT_SPAN];                                                         \
        for (ptrdiff_t i = 0; i < n;) {                                                           \
            const uint64_t j = first + (uint64_t)i;                                               \
            if ((j & 31) || n - i < 32) {                                                         \
                out[i] = fn(x[i] * scale, fcnn_dropout_draw(j, seed), threshold);                 \
                i++;                                                                              \
                continue;                                                                         \
            }                                                                                     \
            /* blocks that fit the buffer and share m's key; m is a multiple of 16 here */        \
            const uint64_t m = fcnn_dropout_slot(j), key = fcnn_splitmix64(seed, m >> 32);        \
            const uint32_t k1 = (uint32_t)key, k2 = (uint32_t)(key >> 32), lo = (uint32_t)m;      \
            const uint64_t to_key_end = (((uint64_t)1 << 32) - lo) / 16;                          \
            ptrdiff_t blocks = (n - i) / 32;                                                      \
            if (blocks > FCNN_DROPOUT_SPAN / 32)                                                  \
                blocks = FCNN_DROPOUT_SPAN / 32;                                                  \
            if ((uint64_t)blocks > to_key_end)                                                    \
                blocks = (ptrdiff_t)to_key_end;                                                   \
            for (ptrdiff_t b = 0; b < blocks; b++)                                                \
                for (int t = 0; t < 16; t++) {                                                    \
                    const uint32_t h = fcnn_dropout_hash(lo + (uint32_t)(16 * b + t), k1, k2);    \
                    draw[32 * b + t] = h & 0xFFFF;                                                \
                    draw[32 * b + 16 + t] = h >> 16;                                              \
                }                                                                                 \
            for (ptrdiff_t k = 0; k < 32 * blocks; k++)                                           \
                out[i + k] = fn(x[i + k] * scale, draw[k], threshold);                            \
            i += 32 * blocks;                                                                     \
        }                                                                                         \
    }

#define FCNN_DROPOUT_LEVEL(ATTR, LEVEL)                                                           \
    FCNN_DROPOUT_ARRAY(ATTR, fcnn_dropout_array_f32_##LEVEL, float, fcnn_dropout_keep_f32)        \
    FCNN_DROPOUT_ARRAY(ATTR, fcnn_dropout_array_f64_##LEVEL, double, fcnn_dropout_keep_f64)

FCNN_DROPOUT_LEVEL(, scalar)
#if FCNN_X86
FCNN_DROPOUT_LEVEL(FCNN_TARGET_V4, avx512)
FCNN_DROPOUT_LEVEL(FCNN_TARGET_AVX2_NOFMA, avx2)
#endif

static void fcnn_dropout_array_f32(const float *x, float *out, ptrdiff_t n, uint64_t first,
                                   uint64_t seed, uint32_t threshold, float scale)
{
    FCNN_DISPATCH(fcnn_level, fcnn_dropout_array_f32, x, out, n, first, seed, threshold, scale);
}

static void fcnn_dropout_array_f64(const double *x, double *out, ptrdiff_t n, uint64_t first,
                                   uint64_t seed, uint32_t threshold, double scale)
{
    FCNN_DISPATCH(fcnn_level, fcnn_dropout_array_f64, x, out, n, first, seed, threshold, scale);
}

#endif
