/* exp, log, sin and cos of float32 in code that vectorises: range reduction and polynomials, no
 * library call and no branch per element (edges by selects). Each function is one element's
 * steps, inlined into the loops of program.h, which compiles them once per SIMD level without
 * FMA contraction: every step is one IEEE operation in a fixed order, so that every level and
 * the NumPy twin (fastcnn._reference.program) give the same bits.
 *
 * exp and log work in float32 (Cephes' reductions and polynomials). sin and cos reduce in
 * double, by the nearest multiple of pi / 2 in two parts (a 33-bit head, so that n times it is
 * exact for the n reached here, and a 53-bit tail), and evaluate the minimax polynomials of
 * FreeBSD's k_sinf.c and k_cosf.c in double (errors near 2^-37 relative on [-pi/4, pi/4]): the
 * one rounding to float32 at the end puts the result within an ulp. Beyond FCNN_TRIG_LIMIT, and
 * for inf and NaN, program.h takes the library's double sin and cos instead. log1p and expm1
 * work in double too: log1p as log(1 + x) (exact but for tiny and huge x) from its exponent and
 * 2 atanh((m - 1) / (m + 1)) as a series, and x - x^2 / 2 for tiny x;
 * expm1 as 2^n exp(r) - 1, exp(r) a Taylor polynomial, and x + x^2 / 2 for tiny x. Their
 * series stop where the next term is below 2^-30 of the result (|s| <= 0.1716, |r| <= 0.3466):
 * errors of a hundredth of a float32 ulp.
 */
#ifndef FASTCNN_VECMATH_H
#define FASTCNN_VECMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "cpu.h"

FCNN_INLINE uint32_t fcnn_bits_f32(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

FCNN_INLINE float fcnn_from_bits_f32(uint32_t u)
{
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* 2 ** n for a normal n, -126 <= n <= 127, from its exponent bits. */
FCNN_INLINE float fcnn_pow2f(int n) { return fcnn_from_bits_f32((uint32_t)(n + 127) << 23); }

/* exp(x): x = n log 2 + r, |r| <= log(2) / 2, exp(r) from a polynomial, times 2 ** n in two
 * factors (so that a subnormal result is rounded once). Inputs are clamped to [-104, 89], beyond
 * which the result is 0 or inf anyway; NaN passes the clamps. */
FCNN_INLINE float fcnn_expf(float x)
{
    x = x > 89.0f ? 89.0f : x;
    x = x < -104.0f ? -104.0f : x;
    /* n = x / log 2 to the nearest whole number, ties to even: 1.5 * 2 ** 23 added and taken
     * away leaves no fraction bits */
    const float nf = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    const int n = (int)nf, half = n >> 1;
    const float r = (x - nf * 0.693359375f) - nf * -2.12194440e-4f;
    const float z = r * r;
    float p = (((((1.9875691500e-4f * r + 1.3981999507e-3f) * r + 8.3334519073e-3f) * r
                 + 4.1665795894e-2f) * r + 1.6666665459e-1f) * r + 5.0000001201e-1f);
    p = (p * z + r) + 1.0f;
    return (p * fcnn_pow2f(half)) * fcnn_pow2f(n - half);
}

/* log(x): x = 2 ** e * f, f in [sqrt(1/2), sqrt(2)), log(f) from a polynomial in f - 1;
 * subnormals are scaled by 2 ** 25 first. 0 gives -inf, negatives NaN, inf and NaN
 * themselves. */
FCNN_INLINE float fcnn_logf(float x)
{
    const int tiny = x < 1.17549435e-38f;
    const uint32_t u = fcnn_bits_f32(tiny ? x * 33554432.0f : x);
    int e = (int)((u >> 23) & 0xff) - 126 - (tiny ? 25 : 0);
    float f = fcnn_from_bits_f32((u & 0x007fffff) | 0x3f000000); /* the fraction in [0.5, 1) */
    const int low = f < 0.707106781186547524f;
    e = e - low;
    f = (low ? f + f : f) - 1.0f; /* exact */
    const float z = f * f;
    float y = ((((((((7.0376836292e-2f * f - 1.1514610310e-1f) * f + 1.1676998740e-1f) * f
                    - 1.2420140846e-1f) * f + 1.4249322787e-1f) * f - 1.6668057665e-1f) * f
                 + 2.0000714765e-1f) * f - 2.4999993993e-1f) * f + 3.3333331174e-1f);
    y = (y * f) * z;
    const float fe = (float)e;
    y = y + fe * -2.12194440e-4f;
    y = y - z * 0.5f;
    float r = (f + y) + fe * 0.693359375f;
    r = x == 0 ? -INFINITY : r;
    r = x < 0 ? NAN : r;
    return (x != x) | (x == INFINITY) ? x : r;
}

/* |x| below this: n = x * 2 / pi rounded is below 2^20, so that n times the 33-bit head of
 * pi / 2 is exact in double. */
#define FCNN_TRIG_LIMIT 1.0e6f

/* sin(x) (shift 0) or cos(x) = sin(x + pi / 2) (shift 1) for |x| < FCNN_TRIG_LIMIT; other x give
 * a finite value that the caller replaces. */
FCNN_INLINE float fcnn_sincosf(float x, int shift)
{
    const double xd = fabsf(x) < FCNN_TRIG_LIMIT ? (double)x : 0.0;
    /* n = x / (pi / 2) to the nearest whole number, ties to even, as in fcnn_expf: the low bits
     * of t's mantissa are n's (two's complement), and say the quadrant without a conversion */
    const double t = xd * 6.36619772367581382433e-01 + 6755399441055744.0;
    const double nd = t - 6755399441055744.0;
    uint64_t n;
    memcpy(&n, &t, sizeof n);
    n = n + (uint64_t)shift;
    const double r = (xd - nd * 1.57079631090164184570e+00) - nd * 1.58932547735281966916e-08;
    const double z = r * r, w = z * z;
    const double s = (r + (z * r) * (-1.66666666416265235595e-01 + z * 8.33332938588946318e-03))
                     + ((z * r) * w) * (-1.98393348360966317347e-04 + z * 2.71831149398982191e-06);
    const double c = ((1.0 + z * -4.99999997251031003120e-01) + w * 4.16666233237390631894e-02)
                     + (w * z) * (-1.38867637746099294692e-03 + z * 2.43904487962774090654e-05);
    const double v = n & 1 ? c : s;
    const float result = (float)(n & 2 ? -v : v);
    return shift == 0 && x == 0 ? x : result; /* sin keeps the sign of zero */
}

/* log1p(x): -1 gives -inf, below it NaN, inf and NaN themselves, zeros keep their sign. */
FCNN_INLINE float fcnn_log1pf(float x)
{
    const double xd = x, u = xd > -1.0 && xd < INFINITY ? 1.0 + xd : 1.0;
    uint64_t bits;
    memcpy(&bits, &u, sizeof bits);
    /* u = 2^k m with m in [sqrt(1/2), sqrt(2)): the exponent taken from bits moved so that
     * the mantissa of sqrt(1/2) starts a new binade */
    bits = bits + ((uint64_t)0x95f62 << 32);
    const double k = (double)((int)(bits >> 52) - 0x3ff);
    bits = (bits & 0x000fffffffffffffULL) + ((uint64_t)0x3fe6a09e << 32);
    double m;
    memcpy(&m, &bits, sizeof m);
    const double f = m - 1.0, s = f / (2.0 + f), z = s * s;
    const double series =
        1.0 + z * (1.0 / 3 + z * (1.0 / 5 + z * (1.0 / 7 + z * (1.0 / 9 + z * (1.0 / 11
        + z * (1.0 / 13))))));
    const double log_u = k * 6.93147180559945286227e-01 + (2.0 * s) * series;
    /* 1 + x is exact in double for float32 x from 2^-29 on; below, x - x^2 / 2 is within
     * 2^-58 of log1p(x) (and keeps -0.0); far above, u's rounding moves log(u) by 2^-53 */
    double r = fabs(xd) < 0x1p-29 ? xd - (xd * xd) * 0.5 : log_u;
    r = xd == -1.0 ? -INFINITY : r;
    r = xd < -1.0 ? NAN : r;
    return (x != x) | (x == INFINITY) ? x : (float)r;
}

/* expm1(x): inputs clamped to [-104, 89] as in fcnn_expf (-1 and inf beyond); zeros keep their
 * sign. */
FCNN_INLINE float fcnn_expm1f(float x)
{
    float xc = x > 89.0f ? 89.0f : x;
    xc = xc < -104.0f ? -104.0f : xc;
    const double xd = xc;
    /* n = x / log 2 rounded, as in fcnn_sincosf; 2^n from n's bits */
    const double t = xd * 1.44269504088896338700e+00 + 6755399441055744.0;
    const double nd = t - 6755399441055744.0;
    uint64_t bits;
    memcpy(&bits, &t, sizeof bits);
    bits = (bits - 0x4338000000000000ULL + 1023) << 52;
    double scale;
    memcpy(&scale, &bits, sizeof scale);
    const double r = (xd - nd * 6.93147180369123816490e-01) - nd * 1.90821492927058770002e-10;
    const double p =
        1.0 + r * (1.0 + r * (1.0 / 2 + r * (1.0 / 6 + r * (1.0 / 24 + r * (1.0 / 120
        + r * (1.0 / 720 + r * (1.0 / 5040 + r * (1.0 / 40320))))))));
    const double v = fabs(xd) < 0x1p-20 ? xd + (xd * xd) * 0.5 : p * scale - 1.0;
    return x == 0 ? x : (float)v;
}

#endif
