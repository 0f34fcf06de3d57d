/* Max pooling, forward and backward: the one max-pool core of the plain MaxPooling2D kernels
 * (pool.pyx) and of conv.pyx's fused conv + max-pool step, per SIMD level in float32 and in
 * plain C in float64.
 *
 * The forward takes the window maxima of an image z (h, zw, co) and their argmax, the index
 * (r*zw + s)*co + c of each in z. Ties keep the first maximum in row-major window order (as
 * PyTorch does): a value replaces the running maximum only when strictly greater, so a NaN never
 * replaces it and a NaN that comes first stays. */
#ifndef FASTCNN_MAXPOOL_H
#define FASTCNN_MAXPOOL_H

#include <stddef.h>
#include <string.h>

#include "cpu.h"
#include "vectors.h"

/* Pooled output (ph, pw), windows (kh, kw) every (sh, sw) over an image of h rows, padded by pt
 * rows above and pl columns to the left; cells outside the image never take part. The fused
 * step pools without padding, and its convolution computes only the (ph-1)*sh + kh rows and
 * (pw-1)*sw + kw columns that windows read. */
typedef struct {
    int ph, pw, kh, kw, sh, sw;
    int h, pt, pl;
} fcnn_pool_geom;

static int fcnn_pooled_rows(const fcnn_pool_geom *p) { return (p->ph - 1) * p->sh + p->kh; }
static int fcnn_pooled_cols(const fcnn_pool_geom *p) { return (p->pw - 1) * p->sw + p->kw; }

/* Windows tile z exactly when they neither overlap nor leave gaps. */
static int fcnn_pool_tiles(const fcnn_pool_geom *p) { return p->sh == p->kh && p->sw == p->kw; }

/* Every window lies whole inside z (zw columns): no clipping anywhere. */
static int fcnn_pool_fits(const fcnn_pool_geom *p, int zw)
{
    return p->pt == 0 && p->pl == 0 && fcnn_pooled_rows(p) <= p->h && fcnn_pooled_cols(p) <= zw;
}

/* The index in z of window (i, j)'s first cell, channel 0, and in nr, nc its rows and columns
 * inside z. */
static inline int fcnn_pool_window(const fcnn_pool_geom *p, int zw, int co, int i, int j, int *nr,
                                   int *nc)
{
    int r0 = i * p->sh - p->pt, s0 = j * p->sw - p->pl, r1 = r0 + p->kh, s1 = s0 + p->kw;
    r0 = r0 > 0 ? r0 : 0;
    s0 = s0 > 0 ? s0 : 0;
    r1 = r1 < p->h ? r1 : p->h;
    s1 = s1 < zw ? s1 : zw;
    *nr = r1 - r0;
    *nc = s1 - s0;
    return (r0 * zw + s0) * co;
}

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
#define FCNN_BY_WINDOW(f, p, ...)                                                                 \
    ((p)->kh == 2 && (p)->kw == 2 ? f(2, 2, (p), __VA_ARGS__) : f((p)->kh, (p)->kw, (p), __VA_ARGS__))

/* Channels c0 .. co of one output pixel: o[c] = the maximum over the window of nr x nc cells
 * whose first cell is z + first, and ao[c] (unless ao is NULL) its index in z. A fold over the
 * cells, sixteen channels at a time, that selects with a bit mask rather than a branch (the
 * compare is as good as random), so that GCC vectorises it at any width. Float32's channel tails
 * and every float64 pooling. */
#define FCNN_MAXPOOL_FOLD(T, SUFFIX)                                                              \
    FCNN_INLINE void fcnn_maxpool_fold_##SUFFIX(int nr, int nc, const T *z, int zw, int co,       \
                                                int first, int c0, T *o, int *ao)                 \
    {                                                                                             \
        for (int c = c0; c < co; c += 16) {                                                       \
            const int n = co - c < 16 ? co - c : 16;                                              \
            T best[16];                                                                           \
            int where[16];                                                                        \
            for (int k = 0; k < n; k++) {                                                         \
                best[k] = z[first + c + k];                                                       \
                where[k] = first + c + k;                                                         \
            }                                                                                     \
            for (int a = 0; a < nr; a++)                                                          \
                for (int b = a == 0; b < nc; b++) {                                               \
                    const int base = first + (a * zw + b) * co + c;                               \
                    for (int k = 0; k < n; k++) {                                                 \
                        const T v = z[base + k];                                                  \
                        const int gt = -(int)(v > best[k]);                                       \
                        best[k] = v > best[k] ? v : best[k];                                      \
                        where[k] = (gt & (base + k)) | (~gt & where[k]);                          \
                    }                                                                             \
                }                                                                                 \
            for (int k = 0; k < n; k++)                                                           \
                o[c + k] = best[k];                                                               \
            if (ao)                                                                               \
                for (int k = 0; k < n; k++)                                                       \
                    ao[c + k] = where[k];                                                         \
        }                                                                                         \
    }

FCNN_MAXPOOL_FOLD(float, f32)
FCNN_MAXPOOL_FOLD(double, f64)

/* One output pixel in float32, eight channels at a time, then the tail by the fold. */
FCNN_INLINE void fcnn_maxpool_px8(const int NR, const int NC, const float *z, int zw, int co,
                                  int first, float *o, int *ao)
{
    const int c8 = co & ~7;
    for (int c = 0; c < c8; c += 8) {
        fcnn_v8 best = FCNN_LD8(z + first + c);
        fcnn_vi8 where = first + c + FCNN_IOTA8;
        for (int a = 0; a < NR; a++)
            for (int b = a == 0; b < NC; b++) {
                const int base = first + (a * zw + b) * co + c;
                const fcnn_v8 v = FCNN_LD8(z + base);
                const fcnn_vi8 gt = v > best;
                best = (fcnn_v8)((gt & (fcnn_vi8)v) | (~gt & (fcnn_vi8)best));
                where = (gt & (base + FCNN_IOTA8)) | (~gt & where);
            }
        FCNN_ST8(o + c, best);
        if (ao)
            FCNN_STI8(ao + c, where);
    }
    if (c8 < co)
        fcnn_maxpool_fold_f32(NR, NC, z, zw, co, first, c8, o, ao);
}

/* Output rows [i0, i1) of the pooling of z (p->h, zw, co) into out (ph, pw, co), argmax as out
 * unless NULL. */
FCNN_INLINE void fcnn_maxpool_win(const int KH, const int KW, const fcnn_pool_geom *p,
                                  const float *z, int zw, int co, int i0, int i1, float *out,
                                  int *argmax)
{
    const int fits = fcnn_pool_fits(p, zw);
    for (int i = i0; i < i1; i++)
        for (int j = 0; j < p->pw; j++) {
            const size_t o = ((size_t)i * p->pw + j) * co;
            int *ao = argmax ? argmax + o : NULL;
            if (fits) {
                fcnn_maxpool_px8(KH, KW, z, zw, co, ((i * p->sh) * zw + j * p->sw) * co, out + o,
                                 ao);
            } else {
                int nr, nc;
                const int first = fcnn_pool_window(p, zw, co, i, j, &nr, &nc);
                fcnn_maxpool_px8(nr, nc, z, zw, co, first, out + o, ao);
            }
        }
}

FCNN_INLINE void fcnn_maxpool_core(const fcnn_pool_geom *p, const float *z, int zw, int co, int i0,
                                   int i1, float *out, int *argmax)
{
    FCNN_BY_WINDOW(fcnn_maxpool_win, p, z, zw, co, i0, i1, out, argmax);
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
 * blends. Same results as fcnn_maxpool_core and fcnn_unpool_core: strict > keeps the first
 * maximum of a tie (and a NaN never replaces it). */
FCNN_TARGET_AVX512 static inline __mmask16 fcnn_lanes16(int left)
{
    return left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
}

/* The cells of a window of nr x nc cells sit at fixed offsets from its first one in z, so the
 * loops keep each cell's offset broadcast in a register and track which offset won, not its
 * absolute index. */
FCNN_TARGET_AVX512 FCNN_INLINE void fcnn_cell_offsets16(const int NR, const int NC, int zw, int co,
                                                        int *off, __m512i *voff)
{
    for (int k = 0; k < NR * NC; k++) {
        off[k] = (k / NC * zw + k % NC) * co;
        voff[k] = _mm512_set1_epi32(off[k]);
    }
}

/* One output pixel: the window of ncell cells at offsets off (voff) from z + first. */
FCNN_TARGET_AVX512 FCNN_INLINE void fcnn_maxpool_px16(const int ncell, const int *off,
                                                      const __m512i *voff, const float *z, int co,
                                                      int first, float *o, int *ao)
{
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (int c = 0; c < co; c += 16) {
        const __mmask16 m = fcnn_lanes16(co - c);
        const float *win = z + first + c;
        __m512 best = _mm512_maskz_loadu_ps(m, win);
        __m512i won = _mm512_setzero_si512();
        for (int k = 1; k < ncell; k++) {
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

FCNN_TARGET_AVX512 FCNN_INLINE void fcnn_maxpool_win16(const int KH, const int KW,
                                                       const fcnn_pool_geom *p, const float *z,
                                                       int zw, int co, int i0, int i1, float *out,
                                                       int *am)
{
    const int pw = p->pw, sh = p->sh, sw = p->sw, fits = fcnn_pool_fits(p, zw);
    int off[KH * KW], coff[KH * KW];
    __m512i voff[KH * KW], vcoff[KH * KW];
    fcnn_cell_offsets16(KH, KW, zw, co, off, voff);
    for (int i = i0; i < i1; i++)
        for (int j = 0; j < pw; j++) {
            const size_t o = ((size_t)i * pw + j) * co;
            int *ao = am ? am + o : NULL;
            if (fits) {
                fcnn_maxpool_px16(KH * KW, off, voff, z, co, ((i * sh) * zw + j * sw) * co,
                                  out + o, ao);
            } else {
                int nr, nc;
                const int first = fcnn_pool_window(p, zw, co, i, j, &nr, &nc);
                fcnn_cell_offsets16(nr, nc, zw, co, coff, vcoff);
                fcnn_maxpool_px16(nr * nc, coff, vcoff, z, co, first, out + o, ao);
            }
        }
}

FCNN_TARGET_AVX512 static void fcnn_maxpool_avx512(const fcnn_pool_geom *p, const float *z, int zw,
                                                   int co, int i0, int i1, float *out, int *am)
{
    FCNN_BY_WINDOW(fcnn_maxpool_win16, p, z, zw, co, i0, i1, out, am);
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

FCNN_TARGET_AVX2 static void fcnn_maxpool_avx2(const fcnn_pool_geom *p, const float *z, int zw,
                                               int co, int i0, int i1, float *out, int *am)
{
    fcnn_maxpool_core(p, z, zw, co, i0, i1, out, am);
}
FCNN_TARGET_AVX2 static int
fcnn_unpool_avx2(const fcnn_pool_geom *p, const float *dy, const float *pooled, const int *am,
                 int zw, int co, int relu, float *dz)
{
    return fcnn_unpool_core(p, dy, pooled, am, zw, co, relu, dz);
}
#endif

static void fcnn_maxpool_scalar(const fcnn_pool_geom *p, const float *z, int zw, int co, int i0,
                                int i1, float *out, int *am)
{
    fcnn_maxpool_core(p, z, zw, co, i0, i1, out, am);
}
static int fcnn_unpool_scalar(const fcnn_pool_geom *p, const float *dy, const float *pooled,
                              const int *am, int zw, int co, int relu, float *dz)
{
    return fcnn_unpool_core(p, dy, pooled, am, zw, co, relu, dz);
}

/* dx (image floats) = each dy[t] (nout of them) added at the cell argmax[t] names, and with relu
 * only where pooled[t] > 0 (the backward of a relu before the pooling); entries outside the
 * image are skipped and counted. The backward of the plain MaxPooling2D kernels, which know the
 * argmax but not the windows, so they scatter rather than write windows whole as
 * fcnn_unpool_image does. */
#define FCNN_MAXPOOL_SCATTER(T, SUFFIX)                                                           \
    static ptrdiff_t fcnn_maxpool_scatter_##SUFFIX(const T *dy, const T *pooled, const int *argmax, \
                                                   size_t nout, size_t image, int relu, T *dx)    \
    {                                                                                             \
        ptrdiff_t bad = 0;                                                                        \
        memset(dx, 0, image * sizeof(T));                                                         \
        for (size_t t = 0; t < nout; t++) {                                                       \
            const size_t cell = (size_t)(unsigned int)argmax[t]; /* a negative index is huge */   \
            const T g = dy[t]; /* loaded whatever the test: the relu's choice is a select */      \
            if (cell >= image)                                                                    \
                bad++;                                                                            \
            else if (relu)                                                                        \
                dx[cell] += pooled[t] > 0 ? g : (T)0;                                             \
            else                                                                                  \
                dx[cell] += g;                                                                    \
        }                                                                                         \
        return bad;                                                                               \
    }

FCNN_MAXPOOL_SCATTER(float, f32)
FCNN_MAXPOOL_SCATTER(double, f64)

/* Output rows [i0, i1) of the max pooling of z (p->h, zw, co) into out (ph, pw, co), with argmax
 * unless NULL; out and argmax point at the image's row 0. */
static void fcnn_maxpool_rows_f32(int level, const fcnn_pool_geom *p, const float *z, int zw,
                                  int co, int i0, int i1, float *out, int *argmax)
{
    FCNN_DISPATCH(level, fcnn_maxpool, p, z, zw, co, i0, i1, out, argmax);
}

static void fcnn_maxpool_rows_f64(const fcnn_pool_geom *p, const double *z, int zw, int co, int i0,
                                  int i1, double *out, int *argmax)
{
    for (int i = i0; i < i1; i++)
        for (int j = 0; j < p->pw; j++) {
            const size_t o = ((size_t)i * p->pw + j) * co;
            int nr, nc;
            const int first = fcnn_pool_window(p, zw, co, i, j, &nr, &nc);
            fcnn_maxpool_fold_f64(nr, nc, z, zw, co, first, 0, out + o, argmax ? argmax + o : NULL);
        }
}

static int fcnn_unpool_image(int level, const fcnn_pool_geom *p, const float *dy,
                             const float *pooled, const int *argmax, int zw, int co, int relu,
                             float *dz)
{
    return FCNN_DISPATCH(level, fcnn_unpool, p, dy, pooled, argmax, zw, co, relu, dz);
}

#endif /* FASTCNN_MAXPOOL_H */
