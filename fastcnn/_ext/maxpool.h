/* Max pooling without padding over an image z, and its backward, per SIMD level: the pooling of
 * conv.pyx's fused conv + max-pool step. */
#ifndef FASTCNN_MAXPOOL_H
#define FASTCNN_MAXPOOL_H

#include <stddef.h>
#include <string.h>

#include "cpu.h"
#include "vectors.h"

/* Max pooling without padding: pooled output (ph, pw), windows (kh, kw) every (sh, sw). The
 * convolution computes only the (ph-1)*sh + kh rows and (pw-1)*sw + kw columns that windows read. */
typedef struct {
    int ph, pw, kh, kw, sh, sw;
} fcnn_pool_geom;

static int fcnn_pooled_rows(const fcnn_pool_geom *p) { return (p->ph - 1) * p->sh + p->kh; }
static int fcnn_pooled_cols(const fcnn_pool_geom *p) { return (p->pw - 1) * p->sw + p->kw; }

/* Windows tile z exactly when they neither overlap nor leave gaps. */
static int fcnn_pool_tiles(const fcnn_pool_geom *p) { return p->sh == p->kh && p->sw == p->kw; }

/* Pooling compares, and GCC turns a compare of 16-float vectors into 16 scalar ones unless the
 * target has 512-bit mask registers (and sometimes even then, after inlining), so the portable
 * loops below use 8-float vectors, which the AVX2 and baseline builds compare natively; the
 * AVX-512 build has its own loops with mask intrinsics further down. */
#define FCNN_LD8(p) ((fcnn_v8)(*(const fcnn_v8u *)(p)))
#define FCNN_LDI8(p) ((fcnn_vi8)(*(const fcnn_vi8u *)(p)))
#define FCNN_ST8(p, v) (*(fcnn_v8u *)(p) = (v))
#define FCNN_STI8(p, v) (*(fcnn_vi8u *)(p) = (v))
#define FCNN_IOTA8 ((fcnn_vi8){0, 1, 2, 3, 4, 5, 6, 7})

/* f(KH, KW, p, ...), with the window size as constants for 2x2 pools, nearly every net's: GCC
 * then unrolls the window loops, whose setup per 8 channels otherwise costs more than the
 * compares. */
#define FCNN_BY_WINDOW(f, p, ...)                                                                  \
    ((p)->kh == 2 && (p)->kw == 2 ? f(2, 2, (p), __VA_ARGS__) : f((p)->kh, (p)->kw, (p), __VA_ARGS__))

/* out (ph, pw, co) = the window maxima of z (rows, zw, co), and argmax (unless NULL) the index
 * (r*zw + s)*co + c of each in z. Ties keep the first maximum in row-major window order, as
 * maxpool2d_forward does. Eight channels at a time, then a scalar tail. */
FCNN_INLINE void fcnn_maxpool_win(const int KH, const int KW, const fcnn_pool_geom *p,
                                  const float *z, int zw, int co, float *out, int *argmax)
{
    const int c8 = co & ~7;
    for (int i = 0; i < p->ph; i++)
        for (int j = 0; j < p->pw; j++) {
            const size_t o = ((size_t)i * p->pw + j) * co;
            const int first = ((i * p->sh) * zw + j * p->sw) * co;
            for (int c = 0; c < c8; c += 8) {
                fcnn_v8 best = FCNN_LD8(z + first + c);
                fcnn_vi8 where = first + c + FCNN_IOTA8;
                for (int a = 0; a < KH; a++)
                    for (int b = a == 0; b < KW; b++) {
                        const int base = ((i * p->sh + a) * zw + j * p->sw + b) * co + c;
                        const fcnn_v8 v = FCNN_LD8(z + base);
                        const fcnn_vi8 gt = v > best;
                        best = (fcnn_v8)((gt & (fcnn_vi8)v) | (~gt & (fcnn_vi8)best));
                        where = (gt & (base + FCNN_IOTA8)) | (~gt & where);
                    }
                FCNN_ST8(out + o + c, best);
                if (argmax)
                    FCNN_STI8(argmax + o + c, where);
            }
            for (int c = c8; c < co; c++) {
                float best = z[first + c];
                int where = first + c;
                for (int a = 0; a < KH; a++)
                    for (int b = a == 0; b < KW; b++) {
                        const int base = ((i * p->sh + a) * zw + j * p->sw + b) * co + c;
                        if (z[base] > best) {
                            best = z[base];
                            where = base;
                        }
                    }
                out[o + c] = best;
                if (argmax)
                    argmax[o + c] = where;
            }
        }
}

FCNN_INLINE void fcnn_maxpool_core(const fcnn_pool_geom *p, const float *z, int zw, int co,
                                   float *out, int *argmax)
{
    FCNN_BY_WINDOW(fcnn_maxpool_win, p, z, zw, co, out, argmax);
}

/* dz (rows, zw, co) = dy (ph, pw, co) placed at its argmax cells, zero elsewhere: the backward of
 * fcnn_maxpool_core. With relu, dy passes only where the pooled value is positive, which is the
 * backward of a relu before the pooling. Argmax entries outside their own window are skipped and
 * counted. Windows that tile z are written whole, eight channels at a time, with no scatter. */
FCNN_INLINE int fcnn_unpool_win(const int KH, const int KW, const fcnn_pool_geom *p,
                                const float *dy, const float *pooled, const int *argmax, int zw,
                                int co, int relu, float *dz)
{
    const int c8 = fcnn_pool_tiles(p) ? co & ~7 : 0;
    const fcnn_v8 zero = {0};
    fcnn_vi8 misses = {0}; /* -1 per lane per vector whose argmax missed its window */
    int bad = 0;
    if (!fcnn_pool_tiles(p))
        memset(dz, 0, (size_t)fcnn_pooled_rows(p) * zw * co * sizeof(float));
    for (int i = 0; i < p->ph; i++)
        for (int j = 0; j < p->pw; j++) {
            const size_t o = ((size_t)i * p->pw + j) * co;
            for (int c = 0; c < c8; c += 8) {
                fcnn_vi8 g = (fcnn_vi8)FCNN_LD8(dy + o + c);
                if (relu)
                    g &= FCNN_LD8(pooled + o + c) > zero;
                const fcnn_vi8 at = FCNN_LDI8(argmax + o + c);
                fcnn_vi8 hit = {0};
                for (int a = 0; a < KH; a++)
                    for (int b = 0; b < KW; b++) {
                        const int base = ((i * p->sh + a) * zw + j * p->sw + b) * co + c;
                        const fcnn_vi8 eq = at == base + FCNN_IOTA8;
                        hit |= eq;
                        FCNN_STI8(dz + base, eq & g);
                    }
                misses += hit == 0;
            }
            for (int c = c8; c < co; c++) { /* channel tails, and every channel otherwise */
                const int at = argmax[o + c], cell = at / co, r = cell / zw, q = cell - r * zw;
                if (fcnn_pool_tiles(p))
                    for (int a = 0; a < KH; a++)
                        for (int b = 0; b < KW; b++)
                            dz[((i * p->sh + a) * zw + j * p->sw + b) * co + c] = 0.0f;
                if (at < 0 || at - cell * co != c || r < i * p->sh || r >= i * p->sh + KH
                    || q < j * p->sw || q >= j * p->sw + KW) {
                    bad++;
                    continue;
                }
                dz[at] += relu && !(pooled[o + c] > 0) ? 0.0f : dy[o + c];
            }
        }
    for (int l = 0; l < 8; l++)
        bad -= misses[l];
    return bad;
}

FCNN_INLINE int fcnn_unpool_core(const fcnn_pool_geom *p, const float *dy, const float *pooled,
                                 const int *argmax, int zw, int co, int relu, float *dz)
{
    return FCNN_BY_WINDOW(fcnn_unpool_win, p, dy, pooled, argmax, zw, co, relu, dz);
}

#if FCNN_X86
/* AVX-512 has compares into mask registers and masked loads and stores, so these do sixteen
 * channels a step, channel tails included, and choose with one masked move instead of and/or
 * blends. Same results
 * as fcnn_maxpool_core and fcnn_unpool_core: strict > keeps the first maximum of a tie (and a NaN
 * never replaces it). */
FCNN_TARGET_AVX512 static inline __mmask16 fcnn_lanes16(int left)
{
    return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
}

/* The window's cells sit at fixed offsets from its first one in z, so the loops keep each cell's
 * offset broadcast in a register and track which offset won, not its absolute index. */
FCNN_TARGET_AVX512 FCNN_INLINE void
fcnn_cell_offsets16(const int KH, const int KW, int zw, int co, int *off, __m512i *voff)
{
    for (int k = 0; k < KH * KW; k++) {
        off[k] = (k / KW * zw + k % KW) * co;
        voff[k] = _mm512_set1_epi32(off[k]);
    }
}

FCNN_TARGET_AVX512 FCNN_INLINE void
fcnn_maxpool_win16(const int KH, const int KW, const fcnn_pool_geom *p, const float *z, int zw,
                   int co, float *out, int *am)
{
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const int ph = p->ph, pw = p->pw, sh = p->sh, sw = p->sw;
    int off[KH * KW];
    __m512i voff[KH * KW];
    fcnn_cell_offsets16(KH, KW, zw, co, off, voff);
    for (int i = 0; i < ph; i++)
        for (int j = 0; j < pw; j++) {
            const int first = ((i * sh) * zw + j * sw) * co;
            float *o = out + ((size_t)i * pw + j) * co;
            int *ao = am ? am + ((size_t)i * pw + j) * co : NULL;
            for (int c = 0; c < co; c += 16) {
                const __mmask16 m = fcnn_lanes16(co - c);
                const float *win = z + first + c;
                __m512 best = _mm512_maskz_loadu_ps(m, win);
                __m512i won = _mm512_setzero_si512();
                for (int k = 1; k < KH * KW; k++) {
                    const __m512 v = _mm512_maskz_loadu_ps(m, win + off[k]);
                    const __mmask16 gt = _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ);
                    best = _mm512_mask_mov_ps(best, gt, v);
                    won = _mm512_mask_mov_epi32(won, gt, voff[k]);
                }
                _mm512_mask_storeu_ps(o + c, m, best);
                if (ao) {
                    const __m512i at = _mm512_add_epi32(_mm512_set1_epi32(first + c), iota);
                    _mm512_mask_storeu_epi32(ao + c, m, _mm512_add_epi32(won, at));
                }
            }
        }
}

FCNN_TARGET_AVX512 static void
fcnn_maxpool_avx512(const fcnn_pool_geom *p, const float *z, int zw, int co, float *out, int *am)
{
    FCNN_BY_WINDOW(fcnn_maxpool_win16, p, z, zw, co, out, am);
}

/* Windows that tile z only; the others (overlapping or gapped) take fcnn_unpool_core's scatter. */
FCNN_TARGET_AVX512 FCNN_INLINE int
fcnn_unpool_win16(const int KH, const int KW, const fcnn_pool_geom *p, const float *dy,
                  const float *pooled, const int *am, int zw, int co, int relu, float *dz)
{
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const int ph = p->ph, pw = p->pw, sh = p->sh, sw = p->sw;
    int off[KH * KW], bad = 0;
    __m512i voff[KH * KW];
    fcnn_cell_offsets16(KH, KW, zw, co, off, voff);
    for (int i = 0; i < ph; i++)
        for (int j = 0; j < pw; j++) {
            const int first = ((i * sh) * zw + j * sw) * co;
            const size_t o = ((size_t)i * pw + j) * co;
            for (int c = 0; c < co; c += 16) {
                const __mmask16 m = fcnn_lanes16(co - c);
                const __m512 g = _mm512_maskz_loadu_ps(m, dy + o + c);
                /* the argmax as an offset from the window's first cell, in this lane's channel */
                const __m512i at = _mm512_sub_epi32(
                    _mm512_maskz_loadu_epi32(m, am + o + c),
                    _mm512_add_epi32(_mm512_set1_epi32(first + c), iota));
                __mmask16 pass = m, hit = 0;
                if (relu)
                    pass = _mm512_mask_cmp_ps_mask(m, _mm512_maskz_loadu_ps(m, pooled + o + c),
                                                   _mm512_setzero_ps(), _CMP_GT_OQ);
                float *win = dz + first + c;
                for (int k = 0; k < KH * KW; k++) {
                    const __mmask16 eq = _mm512_cmpeq_epi32_mask(at, voff[k]);
                    hit |= eq;
                    _mm512_mask_storeu_ps(win + off[k], m, _mm512_maskz_mov_ps(eq & pass, g));
                }
                bad += __builtin_popcount(m & ~hit & 0xFFFF);
            }
        }
    return bad;
}

FCNN_TARGET_AVX512 static int
fcnn_unpool_avx512(const fcnn_pool_geom *p, const float *dy, const float *pooled, const int *am,
                   int zw, int co, int relu, float *dz)
{
    if (!fcnn_pool_tiles(p))
        return fcnn_unpool_core(p, dy, pooled, am, zw, co, relu, dz);
    return FCNN_BY_WINDOW(fcnn_unpool_win16, p, dy, pooled, am, zw, co, relu, dz);
}

FCNN_TARGET_AVX2 static void
fcnn_maxpool_avx2(const fcnn_pool_geom *p, const float *z, int zw, int co, float *out, int *am)
{
    fcnn_maxpool_core(p, z, zw, co, out, am);
}
FCNN_TARGET_AVX2 static int
fcnn_unpool_avx2(const fcnn_pool_geom *p, const float *dy, const float *pooled, const int *am,
                 int zw, int co, int relu, float *dz)
{
    return fcnn_unpool_core(p, dy, pooled, am, zw, co, relu, dz);
}
#endif

static void fcnn_maxpool_scalar(const fcnn_pool_geom *p, const float *z, int zw, int co,
                                float *out, int *am)
{
    fcnn_maxpool_core(p, z, zw, co, out, am);
}
static int fcnn_unpool_scalar(const fcnn_pool_geom *p, const float *dy, const float *pooled,
                              const int *am, int zw, int co, int relu, float *dz)
{
    return fcnn_unpool_core(p, dy, pooled, am, zw, co, relu, dz);
}

static void fcnn_maxpool_image(int level, const fcnn_pool_geom *p, const float *z, int zw, int co,
                               float *out, int *argmax)
{
    FCNN_DISPATCH(level, fcnn_maxpool, p, z, zw, co, out, argmax);
}

static int fcnn_unpool_image(int level, const fcnn_pool_geom *p, const float *dy,
                             const float *pooled, const int *argmax, int zw, int co, int relu,
                             float *dz)
{
    return FCNN_DISPATCH(level, fcnn_unpool, p, dy, pooled, argmax, zw, co, relu, dz);
}

#endif /* FASTCNN_MAXPOOL_H */
