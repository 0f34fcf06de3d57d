/* Batch normalisation's passes over a block of rows of an (M, C) matrix (channels last), called
 * once per chunk of rows from the parallel loops of normalization.pyx. As C loops over a row's
 * channels they vectorise; the same loops in Cython, with per-element memoryview indexing and
 * double arithmetic, did not.
 *
 * Every level compiles without contracting a * b + c into an FMA (the pragmas below: AVX-512F
 * has FMA instructions of its own), so that FCNN_BN_PRE rounds the same way on every path: the
 * backward pass recomputes the forward's relu mask from x with it and must find exactly the
 * forward's signs, and the three paths give the same bits. They also assume no floating-point
 * traps, without which GCC keeps a branch for each relu select. Built once per float type and
 * level by FCNN_BN_PASSES. */
#ifndef FASTCNN_NORMALIZATION_H
#define FASTCNN_NORMALIZATION_H

#include <stddef.h>

#include "cpu.h"

/* The value before the residual and the activation: (x - mean) * scale + beta, with the
 * per-channel scale = gamma * inv_std. Centring first keeps it accurate when the mean is large
 * against the spread, where x * scale + (beta - mean * scale) would cancel. */
#define FCNN_BN_PRE(x, m, s, b) (((x) - (m)) * (s) + (b))

/* FCNN_BN_PRE at channel j of row xr; d where the value v is in the relu's open range (0, cap),
 * else 0 (cap is +inf for a plain relu). */
#define FCNN_BN_PRE_AT(j) FCNN_BN_PRE(xr[j], mean[j], scale[j], beta[j])
#define FCNN_BN_MASKED(v) ((((v) > 0) & ((v) < cap)) ? d : 0)

/* The loops over a row's channels of the backward passes, for one expression G of g each, of
 * d = LOAD (loaded whatever G is, so that the select needs no branch and the loop
 * vectorises). */
#define FCNN_BN_SUMS_LOOP(T, LOAD, G, STORE)                                                       \
    for (ptrdiff_t jj = 0; jj < w_; jj++) {                                                        \
        const ptrdiff_t j = j0 + jj;                                                               \
        T d = LOAD;                                                                                \
        T g = (G);                                                                                 \
        double xhat = ((double)xr[j] - mean[j]) * inv_std[j];                                      \
        sg_[jj] += g;                                                                              \
        sgx_[jj] += g * xhat;                                                                      \
        STORE;                                                                                     \
    }

/* grad_sums' loop for each case of relu, res and g_out, with d = LOAD. */
#define FCNN_BN_SUMS_CASES(T, LOAD)                                                                \
    if (relu && res && g_out)                                                                      \
        FCNN_BN_SUMS_LOOP(T, LOAD, FCNN_BN_MASKED(FCNN_BN_PRE_AT(j) + rr[j]), gr[j] = g)           \
    else if (relu && res)                                                                          \
        FCNN_BN_SUMS_LOOP(T, LOAD, FCNN_BN_MASKED(FCNN_BN_PRE_AT(j) + rr[j]), (void)0)             \
    else if (relu && g_out)                                                                        \
        FCNN_BN_SUMS_LOOP(T, LOAD, FCNN_BN_MASKED(FCNN_BN_PRE_AT(j)), gr[j] = g)                   \
    else if (relu)                                                                                 \
        FCNN_BN_SUMS_LOOP(T, LOAD, FCNN_BN_MASKED(FCNN_BN_PRE_AT(j)), (void)0)                     \
    else if (g_out)                                                                                \
        FCNN_BN_SUMS_LOOP(T, LOAD, d, gr[j] = g)                                                   \
    else                                                                                           \
        FCNN_BN_SUMS_LOOP(T, LOAD, d, (void)0)

#define FCNN_BN_DX_LOOP(T, SRC, G)                                                                 \
    for (ptrdiff_t j = 0; j < c; j++) {                                                            \
        T d = SRC[j];                                                                              \
        T g = (G);                                                                                 \
        double xhat = ((double)xr[j] - mean[j]) * inv_std[j];                                      \
        dxr[j] = (T)((double)gamma[j] * inv_std[j] * (g - mean_g[j] - xhat * mean_gx[j]));         \
    }

/* Channels per block of fcnn_bn_moments and fcnn_bn_grad_sums: a full block's sums stay in
 * registers across the rows (4 AVX-512 vectors of doubles each), where sums in memory cost a load
 * and a store per vector and row. Each column is still summed row by row from 0, so the bits do
 * not depend on it. */
#define FCNN_BN_BLOCK 32

/* The moments of columns j0 .. j0+W-1 (W <= FCNN_BN_BLOCK). */
#define FCNN_BN_MOMENTS_BLOCK(T, W)                                                                \
    do {                                                                                           \
        double s_[FCNN_BN_BLOCK], q_[FCNN_BN_BLOCK];                                               \
        const ptrdiff_t w_ = (W);                                                                  \
        for (ptrdiff_t j = 0; j < w_; j++)                                                         \
            s_[j] = q_[j] = 0;                                                                     \
        for (ptrdiff_t r = 0; r < rows; r++) {                                                     \
            const T *xr = x + r * c + j0;                                                          \
            for (ptrdiff_t j = 0; j < w_; j++)                                                     \
                s_[j] += xr[j];                                                                    \
        }                                                                                          \
        for (ptrdiff_t j = 0; j < w_; j++)                                                         \
            s_[j] = rows ? s_[j] / (double)rows : 0;                                               \
        for (ptrdiff_t r = 0; r < rows; r++) {                                                     \
            const T *xr = x + r * c + j0;                                                          \
            for (ptrdiff_t j = 0; j < w_; j++) {                                                   \
                double d = (double)xr[j] - s_[j];                                                  \
                q_[j] += d * d;                                                                    \
            }                                                                                      \
        }                                                                                          \
        for (ptrdiff_t j = 0; j < w_; j++) {                                                       \
            mean[j0 + j] = s_[j];                                                                  \
            m2[j0 + j] = q_[j];                                                                    \
        }                                                                                          \
    } while (0)

/* grad_sums' sums of columns j0 .. j0+W-1 (W <= FCNN_BN_BLOCK), in registers as the moments'. */
#define FCNN_BN_SUMS_BLOCK(T, W)                                                                   \
    do {                                                                                           \
        double sg_[FCNN_BN_BLOCK], sgx_[FCNN_BN_BLOCK];                                            \
        const ptrdiff_t w_ = (W);                                                                  \
        for (ptrdiff_t jj = 0; jj < w_; jj++)                                                      \
            sg_[jj] = sgx_[jj] = 0;                                                                \
        for (ptrdiff_t r = 0; r < rows; r++) {                                                     \
            const T *xr = x + r * c, *dyr = dy + r * c, *rr = res ? res + r * c : NULL;            \
            T *gr = g_out ? g_out + r * c : NULL;                                                  \
            if (dy2) {                                                                             \
                const T *d2r = dy2 + r * c;                                                        \
                FCNN_BN_SUMS_CASES(T, dyr[j] + d2r[j])                                             \
            } else {                                                                               \
                FCNN_BN_SUMS_CASES(T, dyr[j])                                                      \
            }                                                                                      \
        }                                                                                          \
        for (ptrdiff_t jj = 0; jj < w_; jj++) {                                                    \
            sum_g[j0 + jj] = sg_[jj];                                                              \
            sum_gx[j0 + jj] = sgx_[jj];                                                            \
        }                                                                                          \
    } while (0)

#define FCNN_BN_PASSES(ATTR, T, SUFFIX)                                                            \
    /* Over `rows` rows of x: the mean of each column, and the sum of squared deviations from      \
     * that mean (m2), both in double. A chunk is small enough to stay in cache for the second     \
     * loop, so the two loops cost one read of x from memory. */                                   \
    ATTR static void fcnn_bn_moments_##SUFFIX(const T *x, ptrdiff_t rows, ptrdiff_t c,             \
                                              double *restrict mean, double *restrict m2)          \
    {                                                                                              \
        ptrdiff_t j0 = 0;                                                                          \
        for (; j0 + FCNN_BN_BLOCK <= c; j0 += FCNN_BN_BLOCK)                                       \
            FCNN_BN_MOMENTS_BLOCK(T, FCNN_BN_BLOCK);                                               \
        if (j0 < c)                                                                                \
            FCNN_BN_MOMENTS_BLOCK(T, c - j0);                                                      \
    }                                                                                              \
                                                                                                   \
    /* y = act(FCNN_BN_PRE [+ res]) over `rows` rows, act relu capped at cap (+inf: no cap) or     \
     * the identity (res: or NULL). */                                                            \
    ATTR static void fcnn_bn_apply_##SUFFIX(const T *x, const T *res, ptrdiff_t rows, ptrdiff_t c, \
                                            const T *restrict mean, const T *restrict scale,       \
                                            const T *restrict beta, int relu, T cap, T *y)         \
    {                                                                                              \
        for (ptrdiff_t r = 0; r < rows; r++) {                                                     \
            const T *xr = x + r * c;                                                               \
            T *yr = y + r * c;                                                                     \
            if (res) {                                                                             \
                const T *rr = res ? res + r * c : NULL;                                            \
                if (relu)                                                                          \
                    for (ptrdiff_t j = 0; j < c; j++) {                                            \
                        T v = FCNN_BN_PRE_AT(j) + rr[j];                                           \
                        yr[j] = v > 0 ? (v < cap ? v : cap) : 0;                                   \
                    }                                                                              \
                else                                                                               \
                    for (ptrdiff_t j = 0; j < c; j++)                                              \
                        yr[j] = FCNN_BN_PRE_AT(j) + rr[j];                                         \
            } else if (relu) {                                                                     \
                for (ptrdiff_t j = 0; j < c; j++) {                                                \
                    T v = FCNN_BN_PRE_AT(j);                                                       \
                    yr[j] = v > 0 ? (v < cap ? v : cap) : 0;                                       \
                }                                                                                  \
            } else {                                                                               \
                for (ptrdiff_t j = 0; j < c; j++)                                                  \
                    yr[j] = FCNN_BN_PRE_AT(j);                                                     \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
                                                                                                   \
    /* g = dy (+ dy2, a second part of the gradient, unless NULL), or with relu that where the     \
     * forward's value before the relu (recomputed from x and res as the forward computed it) is   \
     * in (0, cap) and 0 elsewhere. Over `rows` rows: the column sums of g and of g * xhat,       \
     * xhat = (x - mean) * inv_std, in double; g also goes to g_out unless it is NULL. Each case   \
     * has its own loop, without branches, so that it vectorises. */                               \
    ATTR static void fcnn_bn_grad_sums_##SUFFIX(                                                   \
        const T *x, const T *dy, const T *dy2, const T *res, ptrdiff_t rows, ptrdiff_t c,          \
        const T *restrict mean, const T *restrict inv_std, const T *restrict scale,                \
        const T *restrict beta, int relu, T cap, T *g_out, double *restrict sum_g,                 \
        double *restrict sum_gx)                                                                   \
    {                                                                                              \
        ptrdiff_t j0 = 0;                                                                          \
        for (; j0 + FCNN_BN_BLOCK <= c; j0 += FCNN_BN_BLOCK)                                       \
            FCNN_BN_SUMS_BLOCK(T, FCNN_BN_BLOCK);                                                  \
        if (j0 < c)                                                                                \
            FCNN_BN_SUMS_BLOCK(T, c - j0);                                                         \
    }                                                                                              \
                                                                                                   \
    /* dx = gamma * inv_std * (g - mean_g - xhat * mean_gx) over `rows` rows, in double, with g    \
     * read from g_in unless it is NULL, else made from dy as in grad_sums without a residual.     \
     * mean_g and mean_gx are 0 after a forward pass with constant statistics. */                  \
    ATTR static void fcnn_bn_grad_input_##SUFFIX(                                                  \
        const T *x, const T *dy, const T *g_in, ptrdiff_t rows, ptrdiff_t c,                       \
        const T *restrict mean, const T *restrict inv_std, const T *restrict scale,                \
        const T *restrict beta, const T *restrict gamma, const double *restrict mean_g,            \
        const double *restrict mean_gx, int relu, T cap, T *dx)                                    \
    {                                                                                              \
        for (ptrdiff_t r = 0; r < rows; r++) {                                                     \
            const T *xr = x + r * c, *dyr = dy + r * c, *gir = g_in ? g_in + r * c : NULL;         \
            T *dxr = dx + r * c;                                                                   \
            if (g_in)                                                                              \
                FCNN_BN_DX_LOOP(T, gir, d)                                                         \
            else if (relu)                                                                         \
                FCNN_BN_DX_LOOP(T, dyr, FCNN_BN_MASKED(FCNN_BN_PRE_AT(j)))                         \
            else                                                                                   \
                FCNN_BN_DX_LOOP(T, dyr, d)                                                         \
        }                                                                                          \
    }

#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC push_options
#pragma GCC optimize("fp-contract=off", "no-trapping-math")
#endif

#define FCNN_BN_LEVEL(ATTR, LEVEL)                                                                 \
    FCNN_BN_PASSES(ATTR, float, f32_##LEVEL)                                                       \
    FCNN_BN_PASSES(ATTR, double, f64_##LEVEL)

FCNN_BN_LEVEL(, scalar)
#if FCNN_X86
FCNN_BN_LEVEL(FCNN_TARGET_AVX512_NOFMA, avx512)
FCNN_BN_LEVEL(FCNN_TARGET_AVX2_NOFMA, avx2)
#endif

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

#define FCNN_BN_DISPATCHERS(T, SUFFIX)                                                             \
    static void fcnn_bn_moments_##SUFFIX(const T *x, ptrdiff_t rows, ptrdiff_t c, double *mean,    \
                                         double *m2)                                               \
    {                                                                                              \
        FCNN_DISPATCH(fcnn_level, fcnn_bn_moments_##SUFFIX, x, rows, c, mean, m2);                 \
    }                                                                                              \
    static void fcnn_bn_apply_##SUFFIX(const T *x, const T *res, ptrdiff_t rows, ptrdiff_t c,      \
                                       const T *mean, const T *scale, const T *beta, int relu,     \
                                       T cap, T *y)                                                \
    {                                                                                              \
        FCNN_DISPATCH(fcnn_level, fcnn_bn_apply_##SUFFIX, x, res, rows, c, mean, scale, beta,      \
                      relu, cap, y);                                                               \
    }                                                                                              \
    static void fcnn_bn_grad_sums_##SUFFIX(const T *x, const T *dy, const T *dy2, const T *res,    \
                                           ptrdiff_t rows, ptrdiff_t c, const T *mean,             \
                                           const T *inv_std, const T *scale, const T *beta,        \
                                           int relu, T cap, T *g_out, double *sum_g,               \
                                           double *sum_gx)                                         \
    {                                                                                              \
        FCNN_DISPATCH(fcnn_level, fcnn_bn_grad_sums_##SUFFIX, x, dy, dy2, res, rows, c, mean,      \
                      inv_std, scale, beta, relu, cap, g_out, sum_g, sum_gx);                      \
    }                                                                                              \
    static void fcnn_bn_grad_input_##SUFFIX(const T *x, const T *dy, const T *g_in,                \
                                            ptrdiff_t rows, ptrdiff_t c, const T *mean,            \
                                            const T *inv_std, const T *scale, const T *beta,       \
                                            const T *gamma, const double *mean_g,                  \
                                            const double *mean_gx, int relu, T cap, T *dx)         \
    {                                                                                              \
        FCNN_DISPATCH(fcnn_level, fcnn_bn_grad_input_##SUFFIX, x, dy, g_in, rows, c, mean,         \
                      inv_std, scale, beta, gamma, mean_g, mean_gx, relu, cap, dx);                \
    }

FCNN_BN_DISPATCHERS(float, f32)
FCNN_BN_DISPATCHERS(double, f64)

#endif
